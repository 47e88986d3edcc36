"""Writes over HTTP to a real `baas serve` while its PostgreSQL is killed: every answer is a
2xx or a 503 (never a 500), and no driver error leaves a traceback in the log."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.outage import assert_no_tracebacks, own_cluster
from tests.e2e.servers import Server, eventually, running

pytestmark = pytest.mark.slow

POSTS = {"collections": {"posts": {"fields": {"title": {"type": "text", "required": True}}}}}
WRITERS = 12


class WriteLoad:
    """Threads creating records over HTTP as fast as the server answers; every status kept."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.statuses: Counter[int] = Counter()
        self.codes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()  # the client saw no HTTP answer at all
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write) for _ in range(WRITERS)]

    def __enter__(self) -> WriteLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def count(self, status: int) -> int:
        with self._lock:
            return self.statuses[status]

    def _write(self) -> None:
        with self.server.client() as client:
            while not self._stop.is_set():
                try:
                    r = client.post("/api/collections/posts/records", json={"title": "load"})
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors[type(exc).__name__] += 1
                    continue
                with self._lock:
                    self.statuses[r.status_code] += 1
                    if r.status_code >= 400:
                        self.codes[r.json()["error"]["code"]] += 1


def test_writes_while_postgres_is_killed_answer_2xx_or_503(tmp_path: Path) -> None:
    with own_cluster(tmp_path / "pg") as pg:
        env = {"BAAS_DATABASE_URL": pg.url, "BAAS_DB_POOL_MAX": "10"}
        with running(tmp_path, env) as server:
            with server.client() as c:
                assert (
                    c.post("/api/admin/schema/apply", json={"document": POSTS}).status_code == 200
                )
            with WriteLoad(server) as load:
                eventually(lambda: load.count(201) >= 300, timeout=60)
                pg.kill()
                eventually(lambda: load.count(503) >= 200, timeout=60)
                pg.start()
                written = load.count(201)
                eventually(lambda: load.count(201) >= written + 300, timeout=60)
            assert set(load.statuses) <= {201, 503}, (load.statuses, load.codes)
            assert set(load.codes) <= {"database_unavailable", "database_timeout"}, load.codes
            assert not load.errors, load.errors
            assert_no_tracebacks(server)
