"""The `baas` command as a real process: the fixture and helpers CLI tests share."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SECRET_KEY

BAAS = str(Path(sys.executable).parent / "baas")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAAS_")}
    env.update(
        BAAS_DATABASE_URL=database_url,
        BAAS_DATA_DIR=str(tmp_path / "data"),
        BAAS_SECRET_KEY=SECRET_KEY,
        COLUMNS="240",
        NO_COLOR="1",
    )
    return env


Baas = Callable[..., Result]


@pytest.fixture
def baas(database_url: str, tmp_path: Path) -> Baas:
    """Run `baas <args>` in tmp_path against this test's database."""
    env = _env(database_url, tmp_path)

    def run(*args: str, stdin: str = "", extra_env: dict[str, str] | None = None) -> Result:
        done = subprocess.run(
            [BAAS, *args],
            cwd=tmp_path,
            env={**env, **(extra_env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def baas_on_terminal(database_url: str, tmp_path: Path) -> Baas:
    """`baas`, with standard input on a (pseudo-)terminal that answers `answer` to a prompt."""
    env = _env(database_url, tmp_path)

    def run(*args: str, answer: str) -> Result:
        controller, terminal = pty.openpty()
        try:
            os.write(controller, answer.encode() + b"\n")  # the terminal holds it until read
            done = subprocess.run(
                [BAAS, *args],
                cwd=tmp_path,
                env=env,
                stdin=terminal,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            os.close(terminal)
            os.close(controller)
        return Result(done.returncode, done.stdout, done.stderr)

    return run
