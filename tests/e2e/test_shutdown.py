"""`baas serve` stops promptly, with exit code 0, even when its database is down: every shutdown
step runs, bounded in time, whatever the others did."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e.outage import own_cluster, status
from tests.e2e.servers import eventually, start_server

pytestmark = pytest.mark.slow


def test_shutdown_with_the_database_down_runs_every_step(tmp_path: Path) -> None:
    with own_cluster(tmp_path / "pg") as pg:
        server = start_server(tmp_path, {"BAAS_DATABASE_URL": pg.url})
        try:
            server.wait_ready()
            pg.stop()
            eventually(lambda: status(server, "/api/health/ready") == 503, timeout=10)
            began = time.monotonic()
            code = server.stop(signal.SIGTERM, timeout=60)
            took = time.monotonic() - began
        finally:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()
        log = server.output()
        assert code == 0, log[-4000:]
        assert took < 30, took
        summary = [line for line in log.splitlines() if "shutdown in" in line]
        assert len(summary) == 1, log[-4000:]
        for step in (
            "access log",
            "housekeeping",
            "realtime",
            "job worker",
            "background work",
            "listener",
            "mailer",
            "file cleaner",
            "storage",
            "oidc",
            "database pool",
        ):
            assert f"{step} " in summary[0], (step, summary[0])
        assert "Traceback" not in log, log[-6000:]
