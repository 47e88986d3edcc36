"""A running `baas serve` recovers by itself when its PostgreSQL dies and comes back: the embedded
one is restarted by the server (once, whatever the number of workers); an external one is
reconnected to (pool and LISTEN). Liveness stays up while recovery is possible, and fails once
the embedded PostgreSQL cannot be restarted."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import httpx
import pytest

from baas.db.pool import Database, PoolOptions
from baas.schema import service as schema_service
from tests.e2e.outage import (
    assert_no_tracebacks,
    kill_postmaster,
    own_cluster,
    postmaster_pid,
    serving,
    status,
)
from tests.e2e.servers import Server, eventually, running

pytestmark = pytest.mark.slow

POSTS = {"collections": {"posts": {"fields": {"title": {"type": "text", "required": True}}}}}
POSTS_AND_NOTES = {"collections": {**POSTS["collections"], "notes": {"fields": {"body": "text"}}}}


def test_embedded_postgres_killed_under_a_running_server_is_restarted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"BAAS_DATABASE_URL": ""}
    with serving(tmp_path, env, "--workers", "2") as server, server.client() as c:
        assert c.post("/api/admin/schema/apply", json={"document": POSTS}).status_code == 200
        assert c.post("/api/collections/posts/records", json={"title": "a"}).status_code == 201
        killed = kill_postmaster(data / "pg")

        # The outage may be over before a probe sees it (a loaded machine, a fast restart): wait
        # for either, and check liveness while it lasts.
        eventually(
            lambda: (
                status(server, "/api/health/ready") == 503
                or postmaster_pid(data / "pg") not in (None, killed)
            ),
            timeout=30,
        )
        if status(server, "/api/health/ready") == 503:
            assert status(server, "/api/health/live") == 200  # it can recover: no restart wanted
        eventually(lambda: status(server, "/api/health/ready") == 200, timeout=60)
        eventually(
            lambda: (
                c.post("/api/collections/posts/records", json={"title": "b"}).status_code == 201
            ),
            timeout=30,
        )
        restarted = postmaster_pid(data / "pg")
        assert restarted is not None and restarted != killed
        assert server.process.poll() is None  # the same server, never restarted
        # The supervisor says so once it has seen PostgreSQL answer, which may come just after
        # the first request that got through.
        eventually(lambda: "embedded PostgreSQL is back" in server.output(), timeout=10)
        log = server.output()
        assert log.count("embedded PostgreSQL is back") == 1, log[-4000:]  # one supervisor
        titles = c.get("/api/collections/posts/records").json()["items"]
        assert {r["title"] for r in titles} == {"a", "b"}
        assert_no_tracebacks(server)
        assert server.stop(signal.SIGTERM) == 0
    assert postmaster_pid(data / "pg") is None  # the last one out stopped it


def test_liveness_fails_once_the_supervisor_gives_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"BAAS_DATABASE_URL": "", "BAAS_EMBEDDED_RESTARTS": "1"}
    with serving(tmp_path, env) as server:
        assert status(server, "/api/health/live") == 200
        with (data / "pg" / "postgresql.auto.conf").open("a") as conf:
            conf.write("shared_buffers = 'not a size'\n")  # it cannot start again
        kill_postmaster(data / "pg")
        eventually(lambda: status(server, "/api/health/live") == 503, timeout=60)
        body = httpx.get(f"{server.url}/api/health/live").json()
        assert "gave up restarting" in body["problems"]["embedded postgres"]
        assert status(server, "/api/health/ready") == 503
        assert status(server, "/api/health") == 503
        assert "gave up restarting the embedded PostgreSQL" in server.output()


async def _apply(url: str, document: dict[str, object]) -> None:
    """A schema change made by someone else (as another instance would)."""
    db = await Database.open(url, PoolOptions(min_size=1, max_size=1))
    try:
        plan = await schema_service.diff(db, document)
        await schema_service.apply(db, plan, allow_destructive=False, applied_by="test")
    finally:
        await db.close()


async def _listening(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'"
        )
    finally:
        await conn.close()
    return bool(found)


def _collections(server: Server) -> set[str]:
    with server.client() as c:
        r = c.get("/api/admin/collections")
        return set(r.json()["collections"]) if r.status_code == 200 else set()


def test_server_recovers_when_an_external_postgres_comes_back(tmp_path: Path) -> None:
    with own_cluster(tmp_path / "pg") as pg, running(tmp_path, {"BAAS_DATABASE_URL": pg.url}) as s:
        pg.stop()
        eventually(lambda: status(s, "/api/health/ready") == 503, timeout=10)
        assert status(s, "/api/health/live") == 200
        pg.start()
        eventually(lambda: status(s, "/api/health/ready") == 200, timeout=30)
        eventually(lambda: asyncio.run(_listening(pg.url)), timeout=30)  # the listener is back

        asyncio.run(_apply(pg.url, POSTS))  # made elsewhere: reaches the server by NOTIFY
        eventually(lambda: "posts" in _collections(s), timeout=10)
        asyncio.run(_apply(pg.url, POSTS_AND_NOTES))  # and the next one too
        eventually(lambda: "notes" in _collections(s), timeout=10)
        with s.client() as c:
            created = c.post("/api/collections/notes/records", json={"body": "after"})
            assert created.status_code == 201, created.text
        assert_no_tracebacks(s)
