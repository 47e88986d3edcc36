"""Health endpoints: liveness fails only when the process cannot recover by itself; readiness
asks the database one bounded question (reachable, durable, migrated)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from baas.context import AppContext
from baas.http import health


async def test_liveness_answers_on_every_path(client: httpx.AsyncClient) -> None:
    for path in ("/api/health", "/api/health/live"):
        answer = await client.get(path)
        assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
    assert (await client.get("/api/health/ready")).status_code == 200


async def test_a_background_loop_that_ended_fails_liveness(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    await ctx.file_cleaner.loop.stop()  # as if it had died: nothing would clean files again
    live = await client.get("/api/health/live")
    assert live.status_code == 503
    assert live.json() == {"status": "failing", "problems": {"file cleaner": "stopped"}}
    assert (await client.get("/api/health/ready")).status_code == 503


async def test_readiness_wants_this_versions_system_migrations(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    await ctx.db.execute(
        "DELETE FROM baas.system_migrations"
        " WHERE version = (SELECT max(version) FROM baas.system_migrations)"
    )
    ready = await client.get("/api/health/ready")
    assert ready.status_code == 503
    assert "are not applied" in ready.json()["database"]
    assert (await client.get("/api/health/live")).status_code == 200


async def test_readiness_is_bounded_in_time(
    client: httpx.AsyncClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "READY_PROBE_S", 0.3)
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():  # the probe's query waits behind this lock
            await conn.execute("LOCK TABLE baas.system_migrations IN ACCESS EXCLUSIVE MODE")
            ready = await client.get("/api/health/ready")
    finally:
        await conn.close()
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "database_timeout"}
