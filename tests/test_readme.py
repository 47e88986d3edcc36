"""The README stays true: its commands are the ones CI runs, its tables match the code."""

from __future__ import annotations

import re
from pathlib import Path

from baas.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, re.S)


def test_ci_runs_the_readme_test_command() -> None:
    test_command = _sh_blocks()[1].strip()
    assert "scripts/check" in test_command
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci


def test_every_setting_is_documented_with_its_default() -> None:
    for setting in SETTINGS:
        row = re.search(rf"^\| `{setting.env}` \| ([^|]*) \|", README, re.M)
        assert row, f"{setting.env} missing from the README"
        default = setting.default
        if isinstance(default, list):
            allowed = [",".join(default) or "(none)"]
        elif default == "":
            allowed = ["(none)", "(empty)", "http://host:port"]
        else:
            allowed = [str(default).lower() if isinstance(default, bool) else str(default)]
        assert row[1].strip().strip("`") in allowed, (setting.env, row[1])


def test_every_error_code_is_documented() -> None:
    codes: set[str] = set()
    for path in (ROOT / "baas").rglob("*.py"):
        text = path.read_text()
        codes |= set(re.findall(r'code="([a-z_]+)"', text))
        codes |= set(re.findall(r'status, code = \d+, "([a-z_]+)"', text))
    codes -= {
        "bad_request",
        "http_error",
        "conflict",
        "service_unavailable",
        "not_found",
        "foreign_key_violation",
    }
    missing = sorted(c for c in codes if f"`{c}`" not in README)
    assert not missing, missing
