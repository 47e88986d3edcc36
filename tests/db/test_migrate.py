"""System migrations: applied once even when instances start together; tampering is refused."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from baas.db.migrate import MigrationError, available, migrate
from baas.db.pool import connect
from tests.conftest import with_database


async def _fresh(pg_server_url: str, name: str) -> str:
    admin = await asyncpg.connect(with_database(pg_server_url, "postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return with_database(pg_server_url, name)


async def test_concurrent_starts_apply_each_migration_once(pg_server_url: str) -> None:
    url = await _fresh(pg_server_url, "baas_migrate_race")
    conns = [await connect(url) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(len(a) for a in applied) == [0, 0, 0, len(available())]
        rows = await conns[0].fetch("SELECT version FROM baas.system_migrations")
        assert [r["version"] for r in rows] == [m.version for m in available()]
    finally:
        for c in conns:
            await c.close()


async def test_changed_or_unknown_migrations_are_refused(pg_server_url: str) -> None:
    url = await _fresh(pg_server_url, "baas_migrate_tamper")
    conn = await connect(url)
    try:
        await migrate(conn)
        await conn.execute("UPDATE baas.system_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn)
        await conn.execute(
            "UPDATE baas.system_migrations SET checksum = $1 WHERE version = 1",
            available()[0].checksum,
        )
        await conn.execute("INSERT INTO baas.system_migrations VALUES (9999, 'future', 'x')")
        with pytest.raises(MigrationError, match="newer release"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_a_revised_migration_accepts_the_checksum_of_its_published_text(
    pg_server_url: str,
) -> None:
    # A database migrated by the release that shipped the first text of 0008 (the change log)
    # starts under the revised text; any other checksum is still refused.
    first_0008 = "81f0a4733c5cf18b44393a2a2cb5090dcc5f07af3a732548f785f5c49118589f"
    url = await _fresh(pg_server_url, "baas_migrate_revised")
    conn = await connect(url)
    try:
        await migrate(conn)
        await conn.execute(
            "UPDATE baas.system_migrations SET checksum = $1 WHERE version = 8", first_0008
        )
        assert await migrate(conn) == []
        recorded = await conn.fetchval(
            "SELECT checksum FROM baas.system_migrations WHERE version = 8"
        )
        assert recorded == first_0008
        await conn.execute("UPDATE baas.system_migrations SET checksum = 'y' WHERE version = 8")
        with pytest.raises(MigrationError, match="migration 8 changed after it was applied"):
            await migrate(conn)
    finally:
        await conn.close()
