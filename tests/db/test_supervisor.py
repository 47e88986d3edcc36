"""The embedded PostgreSQL's supervisor: a killed postmaster is started again, by exactly one
supervisor per data directory; a standby takes over when the supervising process goes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from baas.db.embedded import EmbeddedPostgres
from baas.db.supervisor import UP, Supervisor, read_state
from tests.e2e.outage import own_cluster, postmaster_pid


def _until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _restarted(pgdata: Path, killed: int) -> bool:
    pid = postmaster_pid(pgdata)
    return pid is not None and pid != killed


def test_one_supervisor_per_data_directory_restarts_a_killed_postgres(tmp_path: Path) -> None:
    with own_cluster(tmp_path / "pg") as cluster:
        first = Supervisor(cluster.pg, max_restarts=3, check_s=0.1)
        second = Supervisor(EmbeddedPostgres(tmp_path / "pg"), max_restarts=3, check_s=0.1)
        try:
            first.start()
            _until(lambda: first.supervising)
            second.start()

            killed = cluster.kill()
            _until(lambda: _restarted(cluster.pg.pgdata, killed))
            _until(lambda: first.restarts == 1)
            assert (first.supervising, second.supervising) == (True, False)
            assert second.restarts == 0
            state = read_state(tmp_path / "pg")
            assert state is not None and (state.state, state.restarts) == (UP, 1)

            first.stop()  # its server exits: the standby takes over
            _until(lambda: second.supervising)
            killed = cluster.kill()
            _until(lambda: _restarted(cluster.pg.pgdata, killed))
            _until(lambda: second.restarts == 1)
            assert first.restarts == 1
        finally:
            first.stop()
            second.stop()
