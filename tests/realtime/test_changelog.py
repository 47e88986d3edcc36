"""The change log against PostgreSQL itself: only committed changes, numbered in commit order,
never a number given twice, a number once read is final, secrets never logged, trimming."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from baas.app import prepare
from baas.db.pool import Database, PoolOptions
from baas.realtime import changelog
from baas.schema import service as schema_service

POSTS = {"collections": {"posts": {"fields": {"title": "text"}}}}


async def _database(url: str) -> Database:
    db = await Database.open(url, PoolOptions(min_size=1, max_size=4))
    await prepare(db)
    change = await schema_service.diff(db, POSTS)
    await schema_service.apply(db, change, allow_destructive=False, applied_by="test")
    return db


async def _insert(conn: asyncpg.Connection, title: str) -> str:
    return str(await conn.fetchval("INSERT INTO posts (title) VALUES ($1) RETURNING id", title))


async def test_changes_are_numbered_in_commit_order_and_never_renumbered(
    database_url: str,
) -> None:
    db = await _database(database_url)
    early = await asyncpg.connect(database_url)
    late = await asyncpg.connect(database_url)
    try:
        # `early` writes first (lower log id) but commits after `late`.
        tx = early.transaction()
        await tx.start()
        await _insert(early, "written first, committed last")
        await _insert(late, "written second, committed first")
        seen = await changelog.next_changes(db, 0)
        assert [c.row("new")["title"] for c in seen] == ["written second, committed first"]
        await tx.commit()
        after = await changelog.next_changes(db, seen[-1].pos)
        assert [c.row("new")["title"] for c in after] == ["written first, committed last"]
        assert after[0].pos == seen[-1].pos + 1  # a reader at pos N missed nothing below it
        assert await changelog.next_changes(db, after[0].pos) == []
    finally:
        await early.close()
        await late.close()
        await db.close()


async def test_rolled_back_writes_never_appear(database_url: str) -> None:
    db = await _database(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        tx = conn.transaction()
        await tx.start()
        await _insert(conn, "never")
        await tx.rollback()
        await _insert(conn, "kept")
        changes = await changelog.next_changes(db, 0)
        assert [(c.op, c.row("new")["title"]) for c in changes] == [("create", "kept")]
    finally:
        await conn.close()
        await db.close()


async def test_concurrent_sequencers_give_each_change_one_number(database_url: str) -> None:
    db = await _database(database_url)
    try:
        writers = [_write_many(database_url, f"w{i}", 40) for i in range(4)]
        readers = [_read_all(db, expect=160) for _ in range(3)]
        results = await asyncio.gather(*writers, *readers)
        for seen in results[4:]:
            positions = [c.pos for c in seen]
            assert positions == list(range(1, 161))  # every reader: all, once, in order
            assert [c.record_id for c in seen] == [c.record_id for c in results[4]]
        per_writer: dict[str, list[int]] = {}
        for change in results[4]:
            title = change.row("new")["title"]
            per_writer.setdefault(title.split(":")[0], []).append(int(title.split(":")[1]))
        assert all(numbers == sorted(numbers) for numbers in per_writer.values())
    finally:
        await db.close()


async def _write_many(url: str, name: str, n: int) -> list[changelog.Change]:
    conn = await asyncpg.connect(url)
    try:
        for i in range(n):
            await _insert(conn, f"{name}:{i}")
    finally:
        await conn.close()
    return []


async def _read_all(db: Database, expect: int) -> list[changelog.Change]:
    seen: list[changelog.Change] = []
    for _ in range(2000):
        batch = await changelog.next_changes(db, seen[-1].pos if seen else 0, limit=7)
        seen += batch
        if len(seen) >= expect:
            return seen
        if not batch:
            await asyncio.sleep(0.005)
    raise AssertionError(f"read {len(seen)} of {expect} changes")


async def test_users_password_hashes_never_reach_the_log(database_url: str) -> None:
    db = await _database(database_url)
    try:
        await db.execute(
            "INSERT INTO users (email, password_hash) VALUES ('a@example.com', 'argon2-secret')"
        )
        await db.execute("UPDATE users SET name = 'Ann'")
        await db.execute("DELETE FROM users")
        logged = await db.fetch("SELECT new::text AS new, old::text AS old FROM baas.change_log")
        assert len(logged) == 3
        assert all("argon2-secret" not in f"{r['new']}{r['old']}" for r in logged)
        assert all("password_hash" not in f"{r['new']}{r['old']}" for r in logged)
    finally:
        await db.close()


async def test_trimming_marks_what_is_gone_and_replay_asks_for_a_refetch(
    database_url: str, tmp_path: Path
) -> None:
    db = await _database(database_url)
    try:
        for i in range(3):  # one tick each: ticks are trimmed whole
            await db.execute("INSERT INTO posts (title) VALUES ($1)", f"p{i}")
            await changelog.high_water(db)
        last = await changelog.high_water(db)
        assert last == 3
        replayed = await changelog.replay(db, "posts", None, 1, last, 100)
        assert replayed is not None and [c.pos for c in replayed] == [2, 3]
        assert await changelog.replay(db, "posts", None, 0, last, 1) is None  # too many
        assert await changelog.replay(db, "posts", None, 99, last, 100) is None  # not ours
        await db.execute(
            "UPDATE baas.change_ticks SET at = now() - interval '2 hours' WHERE base < 2"
        )
        assert await changelog.trim(db, 3600) == 2
        assert await changelog.replay(db, "posts", None, 1, last, 100) is None  # 2 is gone
        kept = await changelog.replay(db, "posts", None, 2, last, 100)
        assert kept is not None and [c.pos for c in kept] == [3]
    finally:
        await db.close()
