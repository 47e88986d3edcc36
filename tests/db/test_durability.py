"""A PostgreSQL that could lose acknowledged writes is refused at start and fails readiness."""

from __future__ import annotations

import asyncpg
import pytest

from baas.app import start
from baas.config import Settings
from baas.db.durability import NotDurable


async def test_start_refuses_synchronous_commit_off(settings: Settings, database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    finally:
        await conn.close()
    with pytest.raises(NotDurable, match="synchronous_commit=off"):
        await start(settings)


async def test_readiness_reports_lost_durability(client, ctx) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get("/api/health/ready")).status_code == 200
    name = await ctx.db.fetchval("SELECT current_database()")
    await ctx.db.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    ctx.db.pool.expire()  # new sessions pick up the database setting
    ready = await client.get("/api/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unsafe"
    assert (await client.get("/api/health")).status_code == 200
