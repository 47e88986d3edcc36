"""`baas serve` on the embedded PostgreSQL: data persists, kill -9 is survived, Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.e2e.servers import running, start_server

POSTS = {"collections": {"posts": {"fields": {"title": {"type": "text", "required": True}}}}}


def _postmaster_pid(data: Path) -> int | None:
    pid_file = data / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _pg_running(data: Path) -> bool:
    return _postmaster_pid(data) is not None


def test_embedded_survives_kill_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"BAAS_DATABASE_URL": ""}
    with running(tmp_path, env, name="first") as first:
        with first.client() as c:
            assert c.post("/api/admin/schema/apply", json={"document": POSTS}).status_code == 200
            record = c.post("/api/collections/posts/records", json={"title": "kept"}).json()
        assert f"data in {data.resolve() / 'pg'}" in first.output()
        first.process.kill()  # kill -9: no chance to stop PostgreSQL
        first.process.wait()
    assert _pg_running(data), "PostgreSQL keeps running after the server is killed"

    # Now PostgreSQL dies too (power cut): the next start must recover from the WAL.
    pid = _postmaster_pid(data)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    second = start_server(tmp_path, env, name="second")
    try:
        second.wait_ready()
        with second.client() as c:
            got = c.get(f"/api/collections/posts/records/{record['id']}")
            assert got.status_code == 200
            assert got.json()["title"] == "kept"
        assert second.stop(signal.SIGINT) == 0
    finally:
        if second.process.poll() is None:
            second.process.kill()
    assert "embedded PostgreSQL stopped" in second.output()
    assert not _pg_running(data)


def test_sigterm_also_stops_the_embedded_postgres(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running(tmp_path, {"BAAS_DATABASE_URL": ""}) as server:
        assert _pg_running(data)
        assert server.stop(signal.SIGTERM) == 0
    assert not _pg_running(data)
