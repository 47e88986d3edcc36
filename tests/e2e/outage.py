"""What outage tests share: PostgreSQL clusters a test owns, to stop, kill and start again
(never the shared ones), and probes of a server under test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from baas.db.embedded import EmbeddedPostgres
from tests.e2e.servers import Server, running


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the running postmaster of `pgdata`, or None."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def kill_postmaster(pgdata: Path) -> int:
    """SIGKILL the postmaster (a crash: its backends die with it); its pid."""
    pid = postmaster_pid(pgdata)
    assert pid is not None, f"no PostgreSQL running in {pgdata}"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while postmaster_pid(pgdata) == pid:
        assert time.monotonic() < deadline, "the postmaster did not die"
        time.sleep(0.02)
    return pid


class Cluster:
    """An embedded cluster used as an external PostgreSQL: stopped, killed, started at will."""

    def __init__(self, directory: Path) -> None:
        self.pg = EmbeddedPostgres(directory)
        self.url = self.pg.url

    def kill(self) -> int:
        return kill_postmaster(self.pg.pgdata)

    def stop(self) -> None:
        self.pg.stop()

    def start(self) -> None:
        """Start it again (after a stop or a kill: it recovers from its WAL)."""
        self.pg.stop()  # after a kill: only lets go of the usage lock
        self.pg.start()


@contextmanager
def own_cluster(directory: Path) -> Iterator[Cluster]:
    """A fresh cluster in `directory`, gone at the end."""
    cluster = Cluster(directory)
    cluster.pg.start()
    try:
        yield cluster
    finally:
        cluster.pg.stop(discard=True)
        pid = postmaster_pid(cluster.pg.pgdata)
        if pid is not None:  # started by a server under test, which was killed
            os.kill(pid, signal.SIGKILL)


def status(server: Server, path: str) -> int:
    """The status `path` answers with (0: no answer)."""
    try:
        return httpx.get(f"{server.url}{path}", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def assert_no_tracebacks(server: Server) -> None:
    log = server.output()
    assert "Traceback" not in log, log[-6000:]


@contextmanager
def serving(tmp: Path, env: dict[str, str], *args: str) -> Iterator[Server]:
    """`running`, but a server still up at the end gets SIGTERM first: its workers and its
    embedded PostgreSQL stop with it even when a test fails half-way."""
    with running(tmp, env, *args) as server:
        try:
            yield server
        finally:
            if server.process.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.stop(signal.SIGTERM, timeout=30)
