"""Settings: defaults < .env < environment < CLI flags; every problem reported at once."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from baas.config import SETTINGS, Settings, SettingsError


def test_defaults() -> None:
    s = Settings.load(environ={}, dotenv_path=None)
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 8090, 1)
    assert s.embedded and s.data_dir == Path("baas_data")
    assert s.base_url == "http://127.0.0.1:8090"


def test_precedence(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("BAAS_PORT=9000\nBAAS_LOG_LEVEL=debug\nBAAS_WORKERS=3\n")
    s = Settings.load(
        overrides={"workers": 4, "host": None},
        environ={
            "BAAS_LOG_LEVEL": "warning",
            "BAAS_CORS_ORIGINS": "https://a.example, https://b.example",
        },
        dotenv_path=dotenv,
    )
    assert s.port == 9000  # from .env
    assert s.log_level == "warning"  # env beats .env
    assert s.workers == 4  # flags beat both
    assert s.host == "127.0.0.1"  # an unset flag changes nothing
    assert s.cors_origins == ("https://a.example", "https://b.example")


def test_every_problem_is_reported() -> None:
    env = {
        "BAAS_PORT": "99999",
        "BAAS_WORKERS": "zero",
        "BAAS_LOG_FORMAT": "xml",
        "BAAS_DATABASE_URL": "mysql://x",
        "BAAS_ACCESS_LOG": "maybe",
        "BAAS_SERVICE_KEY": "short",
    }
    with pytest.raises(SettingsError) as raised:
        Settings.load(environ=env, dotenv_path=None)
    message = str(raised.value)
    for name in ("BAAS_WORKERS", "BAAS_ACCESS_LOG"):
        assert name in message
    valid_types = {k: v for k, v in env.items() if k not in ("BAAS_WORKERS", "BAAS_ACCESS_LOG")}
    with pytest.raises(SettingsError) as raised:
        Settings.load(environ=valid_types, dotenv_path=None)
    message = str(raised.value)
    for name in ("BAAS_PORT", "BAAS_LOG_FORMAT", "BAAS_DATABASE_URL", "BAAS_SERVICE_KEY"):
        assert name in message


def test_secrets_stay_out_of_repr() -> None:
    s = Settings(database_url="postgresql://u:hunter2@db/x", service_key="k" * 40)
    assert "hunter2" not in repr(s)
    assert "k" * 40 not in repr(s)


def test_a_service_key_must_be_one_the_bearer_check_can_match() -> None:
    def problems(key: str) -> str:
        with pytest.raises(SettingsError) as raised:
            Settings.load(environ={"BAAS_SERVICE_KEY": key}, dotenv_path=None)
        assert key not in str(raised.value)  # a secret is never echoed
        return str(raised.value)

    assert "BAAS_SERVICE_KEY: must start with baas_sk_" in problems("x" * 50)
    assert "at least 32 characters after baas_sk_" in problems("baas_sk_" + "0123456789" * 3)
    assert "visible ASCII" in problems("baas_sk_0123456789abcdefghij klmnopqrstuvwxyz")
    assert "placeholder" in problems("baas_sk_changeme-0123456789abcdefghijklmnop")
    good = "baas_sk_" + secrets.token_urlsafe(32)
    assert Settings.load(environ={"BAAS_SERVICE_KEY": good}, dotenv_path=None).service_key == good


def test_the_table_and_the_dataclass_agree() -> None:
    fields = set(Settings.__dataclass_fields__)
    assert {s.name for s in SETTINGS} == fields
    for setting in SETTINGS:
        default = getattr(Settings(), setting.name)
        expected = tuple(setting.default) if isinstance(setting.default, list) else setting.default
        assert default == expected, setting.name
