"""The connection pool and the `Database` handle every service uses.

Every query runs with a pool-acquire timeout, a client-side command timeout and PostgreSQL's
statement_timeout, and every error leaves here already translated (see `db.errors`). Connections
carry no session state between requests, so the pool's reset-on-release is a rollback guard only
(asyncpg's default reset query costs a third of get-one throughput).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from baas.db.errors import translate

log = logging.getLogger("baas.db")

Record = asyncpg.Record
Connection = asyncpg.Connection


@dataclass(frozen=True)
class PoolOptions:
    min_size: int = 2
    max_size: int = 10
    statement_timeout_ms: int = 5000
    acquire_timeout_s: float = 5.0
    command_timeout_s: float = 10.0
    application_name: str = "baas"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(conn: Connection) -> None:
    """Codecs: uuid as canonical text, json/jsonb through orjson."""
    await conn.set_type_codec("uuid", encoder=str, decoder=str, schema="pg_catalog", format="text")
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_json_dumps, decoder=orjson.loads, schema="pg_catalog", format="text"
        )


async def _reset(conn: Connection) -> None:
    # A cancelled request may leave a transaction open; nothing else is ever left behind.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def server_settings(options: PoolOptions) -> dict[str, str]:
    return {
        "application_name": options.application_name,
        "statement_timeout": str(options.statement_timeout_ms),
        "idle_in_transaction_session_timeout": "60000",
        "timezone": "UTC",
        "standard_conforming_strings": "on",
    }


async def connect(url: str, options: PoolOptions | None = None) -> Connection:
    """A dedicated connection (LISTEN, migrations): same settings and codecs as the pool."""
    options = options or PoolOptions()
    try:
        conn = await asyncpg.connect(
            url,
            server_settings=server_settings(options),
            command_timeout=options.command_timeout_s,
            timeout=options.acquire_timeout_s,
        )
    except Exception as exc:
        raise _translated(exc) from exc
    await init_connection(conn)
    return conn


class Database:
    """A pool plus the timeouts and error translation every query gets."""

    def __init__(self, pool: asyncpg.Pool, options: PoolOptions) -> None:
        self.pool = pool
        self.options = options

    @classmethod
    async def open(cls, url: str, options: PoolOptions | None = None) -> Database:
        options = options or PoolOptions()
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=options.min_size,
                max_size=options.max_size,
                command_timeout=options.command_timeout_s,
                server_settings=server_settings(options),
                init=init_connection,
                reset=_reset,
                timeout=options.acquire_timeout_s,
            )
        except Exception as exc:
            raise _translated(exc) from exc
        return cls(pool, options)

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        with translating():
            async with self.pool.acquire(timeout=self.options.acquire_timeout_s) as conn:
                yield conn  # type: ignore[misc]  # a pool proxy behaves as a Connection

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A transaction: committed on success, rolled back on any error."""
        async with self.connection() as conn, conn.transaction():
            yield Tx(conn)

    async def fetch(self, sql: str, *args: Any) -> list[Record]:
        async with self.connection() as conn:
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Record | None:
        async with self.connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        async with self.connection() as conn:
            return await conn.execute(sql, *args)


class Tx:
    """A connection inside a transaction, with the same methods (and translation) as Database."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Record]:
        with translating():
            return await self.conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Record | None:
        with translating():
            return await self.conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        with translating():
            return await self.conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        with translating():
            return await self.conn.execute(sql, *args)


Executor = Database | Tx


@contextlib.contextmanager
def translating() -> Iterator[None]:
    """Re-raise database and driver errors as ours; anything else passes unchanged."""
    try:
        yield
    except Exception as exc:
        translated = _translated(exc)
        if translated is exc:
            raise
        raise translated from exc


def _translated(exc: Exception) -> Exception:
    """Our error for a database/driver failure; anything else (a bug, an ApiError) unchanged."""
    if isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)):
        return translate(exc)
    return exc


class StatementFailed(Exception):
    """A statement of an operator-issued script (schema DDL) failed; the message is PostgreSQL's."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


async def execute_checked(conn: Connection, sql: str, *, fetch: bool = False) -> Any:
    """Run one statement; PostgreSQL errors become StatementFailed with PostgreSQL's own words.

    Only for statements an operator asked for (schema changes), whose errors go back to that
    operator; API requests use `translate` and never show PostgreSQL's text.
    """
    try:
        if fetch:
            return await conn.fetchval(sql)
        await conn.execute(sql)
    except asyncpg.PostgresError as exc:
        detail = getattr(exc, "detail", None)
        message = f"{exc}" + (f" ({detail})" if detail else "")
        raise StatementFailed(exc.sqlstate or "", message) from None
    return None
