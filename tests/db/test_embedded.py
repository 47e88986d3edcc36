"""The embedded PostgreSQL: initialised once, data persists, the last user stops it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg

from baas.db.embedded import EmbeddedPostgres


def _query(url: str, sql: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(url)
        try:
            if ";" in sql:
                return await conn.execute(sql)
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def _running(pg: EmbeddedPostgres) -> bool:
    pid_file = pg.pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except ProcessLookupError:
        return False
    return True


def test_data_persists_and_the_last_user_stops_it(tmp_path: Path) -> None:
    first = EmbeddedPostgres(tmp_path / "data")
    second = EmbeddedPostgres(tmp_path / "data")  # e.g. `baas schema apply` next to a server
    try:
        first.start()
        _query(first.url, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        second.start()
        first.stop()
        assert _running(second), "still in use by the second user"
        assert _query(second.url, "SELECT x FROM kept") == 42
        second.stop()
        assert not _running(second)
    finally:
        first.stop()
        second.stop()

    again = EmbeddedPostgres(tmp_path / "data")
    with again:
        assert _query(again.url, "SELECT x FROM kept") == 42
        assert _query(again.url, "SHOW listen_addresses") == ""  # unix socket only
        assert _query(again.url, "SHOW fsync") == "on"


def test_long_data_dir_paths_use_a_short_socket_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    pg = EmbeddedPostgres(deep)
    assert len(str(pg.socket_dir)) < 100
    assert not str(pg.socket_dir).startswith(str(deep))


def test_an_interrupted_first_start_leaves_nothing_half_made(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "pg.initdb").mkdir()  # what a Ctrl-C during initdb leaves behind
    (data / "pg.initdb" / "PG_VERSION").write_text("16\n")
    pg = EmbeddedPostgres(data)
    try:
        pg.start()
        assert _query(pg.url, "SHOW listen_addresses") == ""
        assert not (data / "pg.initdb").exists()
    finally:
        pg.stop()
