"""The auth commands as real processes against the test database: superusers, users, sessions,
the mail outbox, runtime settings and signing keys."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from baas.app import create_app
from tests.cli.conftest import BAAS, Baas, _env
from tests.cli.test_cli import _ok, _query
from tests.conftest import SERVICE_KEY, asgi_with_state, settings_for
from tests.e2e.servers import free_port

PASSWORD = "a long enough passphrase 42"


def test_superuser_create_prompts_and_can_sign_in(baas: Baas, database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    created = _ok(
        baas("superuser", "create", "Root@Example.com", "--password-stdin", stdin=f"{PASSWORD}\n")
    )
    assert "Superuser root@example.com created" in created.out
    assert PASSWORD not in created.text  # never echoed
    row = _query(database_url, "SELECT email, password_hash FROM baas.superusers")[0]
    assert row["email"] == "root@example.com"
    assert row["password_hash"].startswith("$argon2id$")
    assert "root@example.com" in _ok(baas("superuser", "list")).out

    weak = baas("superuser", "create", "b@example.com", "--password-stdin", stdin="password\n")
    assert weak.code == 1
    assert "password" in weak.err
    assert "Traceback" not in weak.err
    taken = baas("superuser", "create", "root@example.com", "--password-stdin", stdin=PASSWORD)
    assert taken.code == 1 and "exists" in taken.err


def test_superuser_password_for_scripts(baas: Baas, database_url: str) -> None:
    from_env = _ok(
        baas(
            "superuser", "create", "a@example.com", extra_env={"BAAS_SUPERUSER_PASSWORD": PASSWORD}
        )
    )
    assert "Superuser a@example.com created" in from_env.out
    assert PASSWORD not in from_env.text

    for stdin in ("", "\n"):
        empty = baas("superuser", "create", "b@example.com", "--password-stdin", stdin=stdin)
        assert empty.code == 1 and "standard input held no password" in empty.err
    script = baas("superuser", "create", "b@example.com")  # no terminal, no password given
    assert script.code == 1
    assert "--password-stdin" in script.err and "BAAS_SUPERUSER_PASSWORD" in script.err
    assert "Traceback" not in script.err
    rows = _query(database_url, "SELECT email FROM baas.superusers")
    assert [r["email"] for r in rows] == ["a@example.com"]


def test_users_lifecycle(baas: Baas, database_url: str) -> None:
    out = _ok(
        baas("users", "create", "ann@example.com", "--verified", "--password-stdin", stdin=PASSWORD)
    )
    user_id = re.search(r"\(([0-9a-f-]{36})\)", out.out).group(1)  # type: ignore[union-attr]
    _ok(baas("users", "create", "bob@example.com", "--no-password"))
    listed = _ok(baas("users", "list")).out
    assert "ann@example.com" in listed and "bob@example.com" in listed
    assert "2 user(s)" in listed
    assert "ann@example.com" in _ok(baas("users", "list", "--search", "an")).out
    assert "bob@example.com" not in _ok(baas("users", "list", "--search", "an")).out

    _query(
        database_url,
        "INSERT INTO baas.sessions (subject, role, expires, max_expires) "
        "VALUES ($1, 'user', now() + interval '1 day', now() + interval '1 day')",
        user_id,
    )
    assert "Ended 1 session(s)" in _ok(baas("users", "sessions", "revoke", "ann@example.com")).out

    assert "Disabled ann@example.com" in _ok(baas("users", "disable", user_id)).out
    assert _query(database_url, "SELECT disabled FROM users WHERE id = $1", user_id)[0][0] is True
    _ok(baas("users", "enable", "ann@example.com"))
    assert _query(database_url, "SELECT disabled FROM users WHERE id = $1", user_id)[0][0] is False

    unconfirmed = baas("users", "delete", "ann@example.com")  # a script: no terminal
    assert unconfirmed.code == 1
    assert "Refusing to delete user ann@example.com" in unconfirmed.err
    assert "re-run with --yes" in unconfirmed.err
    _ok(baas("users", "delete", "ann@example.com", "--yes"))
    assert _query(database_url, "SELECT count(*) FROM users")[0][0] == 1
    missing = baas("users", "disable", "nobody@example.com")
    assert missing.code == 1 and "no user with email" in missing.err


def test_a_bad_address_is_refused_before_the_password_prompt(baas: Baas, database_url: str) -> None:
    for command in (("superuser", "create"), ("users", "create")):
        for email in ("", "ann@localhost", "ann lee@example.com"):
            refused = baas(*command, email)  # no stdin: a prompt would abort instead
            assert refused.code == 1, refused.text
            assert "email: not an email address" in refused.err, refused.text
            assert "Password" not in refused.text
            assert "Traceback" not in refused.err
    assert _query(database_url, "SELECT count(*) FROM baas.superusers")[0][0] == 0
    assert _query(database_url, "SELECT count(*) FROM users")[0][0] == 0
    created = _ok(baas("users", "create", " Ann@BÜCHER.de ", "--no-password"))
    assert "User ann@xn--bcher-kva.de created" in created.out
    _ok(baas("users", "disable", "ann@bücher.de"))  # found by any spelling of the address
    assert _query(database_url, "SELECT disabled FROM users")[0][0] is True


async def test_mail_outbox_shows_what_the_server_queued(
    baas: Baas, database_url: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    application = create_app(settings_for(database_url, tmp_path / "data"))
    async with application.router.lifespan_context(application) as state:
        transport = httpx.ASGITransport(app=asgi_with_state(application, state))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = {"email": "cara@example.com", "password": PASSWORD}
            assert (await client.post("/api/auth/sign-up", json=body)).status_code == 202
    outbox = _ok(baas("mail", "outbox")).out
    assert "cara@example.com" in outbox
    mail_id = outbox.split()[0]
    shown = _ok(baas("mail", "outbox", "--show", mail_id)).out
    assert "To: cara@example.com" in shown
    assert "/auth/verify-email?token=" in shown


def test_settings_set_list_unset(baas: Baas) -> None:
    _ok(baas("settings", "set", "auth.access_token_ttl", "600"))
    _ok(baas("settings", "set", "app.name", "Acme"))
    listed = _ok(baas("settings", "list")).out
    assert re.search(r"\* auth\.access_token_ttl\s+600", listed), listed
    assert re.search(r"\* app\.name\s+\"Acme\"", listed), listed
    bad = baas("settings", "set", "auth.access_token_ttl", "forever")
    assert bad.code == 1 and "auth.access_token_ttl" in bad.err
    unknown = baas("settings", "set", "no.such", "1")
    assert unknown.code == 1
    _ok(baas("settings", "set", "smtp.password", "hunter2-secret"))
    assert "hunter2" not in _ok(baas("settings", "list")).out
    _ok(baas("settings", "unset", "auth.access_token_ttl"))
    assert re.search(r"  auth\.access_token_ttl\s+900", _ok(baas("settings", "list")).out)


def test_signing_keys_rotate(baas: Baas) -> None:
    before = _ok(baas("signing-keys", "list")).out.strip().splitlines()
    assert len(before) == 1 and "current" in before[0]
    rotated = _ok(baas("signing-keys", "rotate")).out
    assert "New signing key" in rotated
    after = _ok(baas("signing-keys", "list")).out.strip().splitlines()
    assert len(after) == 2


def test_signing_keys_revoke(baas: Baas, database_url: str) -> None:
    [current] = _ok(baas("signing-keys", "list")).out.strip().splitlines()
    old_kid = current.split()[0]
    only = baas("signing-keys", "revoke", old_kid)
    assert only.code == 1 and "rotate first" in only.err, only.text
    assert "Traceback" not in only.err
    missing = baas("signing-keys", "revoke", "nope")
    assert missing.code == 1 and "no signing key" in missing.err
    new_kid = re.search(r"New signing key (\S+),", _ok(baas("signing-keys", "rotate")).out)[1]  # type: ignore[index]
    revoked = _ok(baas("signing-keys", "revoke", old_kid)).out
    assert f"Revoked signing key {old_kid}" in revoked and new_kid in revoked
    listed = _ok(baas("signing-keys", "list")).out.strip().splitlines()
    lines = {line.split()[0]: line for line in listed}
    assert "  revoked " in lines[old_kid] and lines[new_kid].endswith("  current")
    rows = _query(database_url, "SELECT kid, revoked IS NOT NULL AS r FROM baas.signing_keys")
    assert {row["kid"]: row["r"] for row in rows} == {old_kid: True, new_kid: False}


BAD_SERVICE_KEYS = [
    ("k3y-without-the-prefix-0123456789abcdefghij", "must start with baas_sk_"),
    ("baas_sk_0123456789abcdef", "at least 32 characters after baas_sk_"),
    ("baas_sk_" + "a" * 40, "placeholder"),
]


@pytest.mark.parametrize(("key", "problem"), BAD_SERVICE_KEYS)
def test_serve_refuses_a_service_key_that_could_never_authenticate(
    database_url: str, tmp_path: Path, key: str, problem: str
) -> None:
    env = {**_env(database_url, tmp_path), "BAAS_SERVICE_KEY": key, "BAAS_PORT": str(free_port())}
    done = subprocess.run(
        [BAAS, "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "BAAS_SERVICE_KEY" in done.stderr and problem in done.stderr, done.stderr
    assert key not in done.stdout + done.stderr  # a secret is never echoed
    assert not (tmp_path / "data").exists()  # refused before anything started


def test_serve_flag_for_the_service_key_is_checked_the_same_way(baas: Baas) -> None:
    refused = baas("serve", "--service-key", SERVICE_KEY.removeprefix("baas_sk_") + "-more")
    assert refused.code == 2
    assert "BAAS_SERVICE_KEY: must start with baas_sk_" in refused.err
