"""The connection pool: bounded, fair, and never hands out a connection with a query in flight."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from asyncpg.exceptions import _base as asyncpg_base

from baas.db.errors import (
    DatabaseUnavailable,
    UnexpectedDatabaseError,
    connection_failed,
    translate,
)
from baas.db.pool import Database, PoolOptions, translating
from baas.errors import ApiError


async def _open(url: str, **options: float) -> Database:
    return await Database.open(url, PoolOptions(**{"min_size": 1, "max_size": 2, **options}))  # type: ignore[arg-type]


async def _in_flight(url: str, sql: str) -> None:
    """Until the server is running `sql` (seen from a connection of its own)."""
    watcher = await asyncpg.connect(url)
    try:
        async with asyncio.timeout(10):
            while not await watcher.fetchval(  # noqa: ASYNC110 - polls the server
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query = $1 AND state = 'active'",
                sql,
            ):
                await asyncio.sleep(0.01)
    finally:
        await watcher.close()


async def test_never_more_than_max_size_connections(database_url: str) -> None:
    db = await _open(database_url)
    try:
        pids = await asyncio.gather(
            *(db.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.05)") for _ in range(8))
        )
        assert len(set(pids)) == 2
        assert db.pool.size == 2
    finally:
        await db.close()


async def test_waiting_too_long_for_a_connection_is_a_503(database_url: str) -> None:
    db = await _open(database_url, max_size=1, acquire_timeout_s=0.2)
    try:
        slow = asyncio.create_task(db.fetchval("SELECT pg_sleep(1)"))
        await _in_flight(database_url, "SELECT pg_sleep(1)")  # it holds the only connection
        with pytest.raises(ApiError) as raised:
            await db.fetchval("SELECT 1")
        assert raised.value.status == 503
        assert raised.value.code == "database_timeout"
        await slow
        assert await db.fetchval("SELECT 1") == 1
    finally:
        await db.close()


async def test_a_cancelled_query_never_reaches_the_next_caller(database_url: str) -> None:
    db = await _open(database_url, max_size=1)
    try:
        first = await db.fetchval("SELECT pg_backend_pid()")
        task = asyncio.create_task(db.fetchval("SELECT pg_sleep(5)"))
        await _in_flight(database_url, "SELECT pg_sleep(5)")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The connection that was mid-query was thrown away; a fresh one answers at once.
        assert await asyncio.wait_for(db.fetchval("SELECT 42"), 2) == 42
        assert await db.fetchval("SELECT pg_backend_pid()") != first
    finally:
        await db.close()


async def test_a_server_error_keeps_the_connection(database_url: str) -> None:
    db = await _open(database_url, max_size=1)
    try:
        pid = await db.fetchval("SELECT pg_backend_pid()")
        with pytest.raises(ApiError):
            await db.fetchval("SELECT 1 / 0")
        assert await db.fetchval("SELECT pg_backend_pid()") == pid
    finally:
        await db.close()


async def test_a_connection_killed_by_the_server_is_replaced(database_url: str) -> None:
    db = await _open(database_url, max_size=1)
    try:
        pid = await db.fetchval("SELECT pg_backend_pid()")
        other = await Database.open(database_url, PoolOptions(min_size=1, max_size=1))
        await other.fetchval("SELECT pg_terminate_backend($1)", pid)
        await other.close()
        await asyncio.sleep(0.1)  # the driver notices the closed socket
        assert await db.fetchval("SELECT pg_backend_pid()") != pid
    finally:
        await db.close()


async def test_waiters_are_served_in_order(database_url: str) -> None:
    db = await _open(database_url, max_size=1)
    order: list[int] = []
    try:

        async def use(n: int) -> None:
            await db.fetchval("SELECT pg_sleep(0.02)")
            order.append(n)

        tasks = []
        for n in range(5):
            tasks.append(asyncio.create_task(use(n)))
            await asyncio.sleep(0.001)
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4]
    finally:
        await db.close()


async def test_expire_replaces_every_connection(database_url: str) -> None:
    db = await _open(database_url, max_size=1)
    try:
        before = await db.fetchval("SELECT pg_backend_pid()")
        db.pool.expire()
        assert await db.fetchval("SELECT pg_backend_pid()") != before
    finally:
        await db.close()


async def test_an_open_transaction_is_never_handed_on(database_url: str) -> None:
    db = await _open(database_url, max_size=1)
    try:
        async with db.connection() as conn:
            await conn.execute("BEGIN; SET LOCAL application_name = 'leaked'")
        assert await db.fetchval("SELECT current_setting('application_name')") == "baas"
    finally:
        await db.close()


DRIVER_FAILURES = [
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    asyncpg.exceptions.ProtocolError("unexpected message"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ConnectionResetError(104, "Connection reset by peer"),
    asyncpg.exceptions.CrashShutdownError("terminating connection because of crash"),
]


async def _fail_in_transaction(db: Database, failure: Exception) -> None:
    async with db.transaction():
        with translating():  # as a statement inside a transaction translates its own error
            raise failure


async def _fail_on_connection(db: Database, failure: Exception) -> None:
    async with db.connection():
        raise failure  # raw, as the driver raises it


@pytest.mark.parametrize("failure", DRIVER_FAILURES, ids=lambda e: type(e).__name__)
async def test_a_driver_failure_is_a_503_and_its_connection_is_thrown_away(
    database_url: str, failure: Exception
) -> None:
    db = await _open(database_url, max_size=1)
    try:
        before = await db.fetchval("SELECT pg_backend_pid()")
        with pytest.raises(DatabaseUnavailable) as raised:
            await _fail_in_transaction(db, failure)
        assert (raised.value.status, raised.value.code) == (503, "database_unavailable")
        after = await db.fetchval("SELECT pg_backend_pid()")
        assert after != before
        with pytest.raises(DatabaseUnavailable):
            await _fail_on_connection(db, failure)
        assert await db.fetchval("SELECT pg_backend_pid()") != after
    finally:
        await db.close()


def test_errors_in_what_we_asked_the_driver_are_bugs_not_outages() -> None:
    bad_argument = asyncpg_base.DataError("invalid input for query argument $1: 'x'")
    assert isinstance(translate(bad_argument), UnexpectedDatabaseError)
    assert not connection_failed(bad_argument)
