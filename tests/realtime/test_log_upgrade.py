"""Upgrading a database whose change log is in the format before migration 0008 (one row per
write, numbered by a sequencer): the records stay, change ids go on from where they were (none
given twice), changes committed but not yet numbered are numbered, and a client resumes from any
change id it could replay before the upgrade with exactly what it missed: the changes from before
it as the old log gave them, with their ids, then the new ones."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from baas.db.migrate import latest_version, migrate
from baas.db.pool import Database, PoolOptions, connect
from baas.realtime import changelog
from baas.schema import service as schema_service
from tests.conftest import with_database

BEFORE = 7  # the last migration of the sequencer's log
POSTS = {"collections": {"posts": {"fields": {"title": "text", "n": "integer"}}}}
ACTIONS = {"I": "create", "U": "update", "D": "delete"}


@pytest.fixture
async def old_database(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh database migrated up to `BEFORE` only, with the `posts` collection."""
    name = f"baas_log_upgrade_{os.getpid()}"
    admin = await asyncpg.connect(with_database(pg_server_url, "postgres"))
    await admin.execute(f"DROP DATABASE IF EXISTS {name}")
    await admin.execute(f"CREATE DATABASE {name}")
    url = with_database(pg_server_url, name)
    try:
        conn = await connect(url)
        try:
            applied = await migrate(conn, upto=BEFORE)
            assert [m.version for m in applied] == list(range(1, BEFORE + 1))
        finally:
            await conn.close()
        db = await Database.open(url, PoolOptions(min_size=1, max_size=2))
        try:
            await schema_service.ensure_auth_collection(db)
            change = await schema_service.diff(db, POSTS)
            await schema_service.apply(db, change, allow_destructive=False, applied_by="test")
        finally:
            await db.close()
        yield url
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def _old_log(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    """The numbered changes of the sequencer's log, as its readers got them."""
    rows = await conn.fetch("SELECT * FROM baas.next_changes(0, 1000)")
    return [(r["pos"], str(r["record_id"]), ACTIONS[r["op"]], r["new"], r["old"]) for r in rows]


def _seen(changes: list[changelog.Change]) -> list[tuple[Any, ...]]:
    return [(c.pos, c.record_id, c.op, c.new_json, c.old_json) for c in changes]


async def test_the_change_log_upgrade_keeps_records_and_change_ids(old_database: str) -> None:
    conn = await connect(old_database)
    try:
        ids = [
            str(await conn.fetchval("INSERT INTO posts (title, n) VALUES ($1, 0) RETURNING id", t))
            for t in ("a", "b", "c")
        ]
        await conn.execute("UPDATE posts SET n = 1 WHERE id = $1", ids[0])
        async with conn.transaction():  # two writes of one record in one transaction
            await conn.execute("UPDATE posts SET n = 2 WHERE id = $1", ids[0])
            await conn.execute("UPDATE posts SET title = 'a2' WHERE id = $1", ids[0])
        await conn.execute("DELETE FROM posts WHERE id = $1", ids[1])
        before = await _old_log(conn)  # a client reading now sees these (one per write)
        assert [p[0] for p in before] == list(range(1, 8))
        head = before[-1][0]
        # committed but not yet numbered when the old server stopped
        await conn.execute("UPDATE posts SET n = 3 WHERE id = $1", ids[2])
        await conn.execute("INSERT INTO posts (title) VALUES ('d')")

        assert [m.version for m in await migrate(conn)] == list(
            range(BEFORE + 1, latest_version() + 1)
        )
        titles = await conn.fetch("SELECT title, n FROM posts ORDER BY title")
        assert [(r["title"], r["n"]) for r in titles] == [("a2", 2), ("c", 3), ("d", None)]
    finally:
        await conn.close()

    db = await Database.open(old_database, PoolOptions(min_size=1, max_size=2))
    try:
        assert await changelog.high_water(db) == head + 2  # the pending two were numbered
        writer = await connect(old_database)
        try:
            await writer.execute("UPDATE posts SET n = 4 WHERE id = $1", ids[2])
        finally:
            await writer.close()
        [after] = await changelog.next_changes(db, head + 2)
        assert (after.pos, after.record_id, after.op) == (head + 3, ids[2], "update")
        assert after.row("new")["n"] == 4  # type: ignore[index]

        everything = await changelog.replay(db, "posts", None, 0, after.pos, 100)
        assert everything is not None
        assert _seen(everything[:head]) == before  # as the old log gave them, ids included
        pending = [(c.pos, c.record_id, c.op) for c in everything[head : head + 2]]
        assert pending[0] == (head + 1, ids[2], "update")
        assert everything[head].row("new")["n"] == 3  # type: ignore[index]
        assert (pending[1][0], pending[1][2]) == (head + 2, "create")
        assert everything[head + 1].row("new")["title"] == "d"  # type: ignore[index]
        assert _seen(everything[head + 2 :]) == _seen([after])

        # from any id it had, a client resumes with exactly what came after it
        for since in (0, 3, head, head + 2):
            resumed = await changelog.replay(db, "posts", None, since, after.pos, 100)
            assert resumed is not None and _seen(resumed) == _seen(everything[since:])
        record = await changelog.replay(db, "posts", ids[0], 1, after.pos, 100)
        assert record is not None
        assert [c.pos for c in record] == [c.pos for c in everything[1:] if c.record_id == ids[0]]
        assert [c.op for c in record] == ["update", "update", "update"]
        # the live reader reads the same ids, and nothing twice
        live = await changelog.next_changes(db, 0)
        assert _seen(live) == _seen(everything)

        # the carried-over changes leave with the retention window, the later ones stay
        await db.execute(
            "UPDATE baas.change_ticks SET at = now() - interval '2 hours' WHERE base = 0"
        )
        assert await changelog.trim(db, 3600) == head + 2
        assert await changelog.replay(db, "posts", None, head, after.pos, 100) is None
        kept = await changelog.replay(db, "posts", None, head + 2, after.pos, 100)
        assert kept is not None and _seen(kept) == _seen([after])
    finally:
        await db.close()
