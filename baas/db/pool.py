"""Connections: the pool and the `Database` handle every service uses.

Every query runs under a pool-acquire timeout, a client-side command timeout and PostgreSQL's
statement_timeout, and every error leaves here already translated (see `db.errors`).

The pool is a small one of our own over `asyncpg.connect`: asyncpg's Pool spends about 50 us of
CPU per acquire+release (its release runs in a new task under `asyncio.shield`), more than the
query of a get-one request itself; here acquire and release are a deque pop and push. Safety rules
that make that possible: connections carry no session state between requests, a connection comes
back only from a request that finished normally or failed inside PostgreSQL, and one whose request
was cancelled or timed out (its query may still be running), or whose driver failed (see
`db.errors.connection_failed`), is terminated, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from baas.db.bells import Bells
from baas.db.errors import DatabaseUnavailable, connection_failed, translate

log = logging.getLogger("baas.db")

Record = asyncpg.Record
Connection = asyncpg.Connection
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,  # ConnectionError and TimeoutError among them
)
CLOSE_TIMEOUT_S = 2.0  # a clean close of one connection; then it is terminated


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


def server_settings(options: PoolOptions) -> dict[str, str]:
    return {
        "application_name": options.application_name,
        "statement_timeout": str(options.statement_timeout_ms),
        "idle_in_transaction_session_timeout": "60000",
        "timezone": "UTC",
        "standard_conforming_strings": "on",
    }


async def connect(url: str, options: PoolOptions | None = None) -> Connection:
    """A new connection with the settings and codecs of the pool (LISTEN, migrations use one)."""
    options = options or PoolOptions()
    try:
        conn = await asyncpg.connect(
            url,
            server_settings=server_settings(options),
            command_timeout=options.command_timeout_s,
            timeout=options.acquire_timeout_s,
        )
        await init_connection(conn)
    except TimeoutError as exc:  # no answer to a connect: as good as unreachable
        raise DatabaseUnavailable("could not connect to the database in time") from exc
    except Exception as exc:
        raise _translated(exc) from exc
    return conn


class ConnectionPool:
    """`min_size` to `max_size` connections; waiters are served first come, first served."""

    def __init__(self, url: str, options: PoolOptions) -> None:
        self._url = url
        self._options = options
        self._idle: deque[Connection] = deque()
        self._waiters: deque[asyncio.Future[Connection]] = deque()
        self._size = 0  # open and opening connections
        self._generation: dict[Connection, int] = {}
        self._current = 0
        self._closed = False
        self._opening: set[asyncio.Task[None]] = set()

    @property
    def size(self) -> int:
        return self._size

    async def open(self) -> None:
        for _ in range(self._options.min_size):
            self._size += 1
            try:
                self._idle.append(await self._connect())
            except BaseException:
                self._size -= 1
                raise

    async def acquire(self) -> Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the pool is closed")
        while self._idle:
            conn = self._idle.pop()  # most recently used first: its caches are warm
            if not conn.is_closed():
                return conn
            self._forget(conn)
        if self._size < self._options.max_size:
            self._size += 1
            try:
                return await self._connect()
            except BaseException:
                self._size -= 1
                raise
        return await self._wait()

    async def _wait(self) -> Connection:
        waiter: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._options.acquire_timeout_s):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # handed to us just as we gave up
            else:
                waiter.cancel()
            raise

    def release(self, conn: Connection, *, discard: bool = False) -> None:
        """Return a connection; `discard` (or a broken one, or an open transaction) closes it."""
        if (
            discard
            or self._closed
            or conn.is_closed()
            or conn.is_in_transaction()
            or self._generation.get(conn) != self._current
        ):
            self._drop(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def expire(self) -> None:
        """Replace every connection (idle ones now, busy ones when released): new sessions pick
        up changed database or role settings."""
        self._current += 1
        while self._idle:
            self._drop(self._idle.pop())

    async def close(self) -> None:
        self._closed = True
        for waiter in self._waiters:
            waiter.cancel()
        for task in list(self._opening):
            task.cancel()
        idle, self._idle = list(self._idle), deque()
        for conn in idle:
            self._forget(conn)
        # all at once and bounded: with the database gone, each close would wait its timeout
        await asyncio.gather(*(_close(conn) for conn in idle))

    async def _connect(self) -> Connection:
        conn = await connect(self._url, self._options)
        self._generation[conn] = self._current
        return conn

    def _drop(self, conn: Connection) -> None:
        self._forget(conn)
        conn.terminate()
        if self._waiters and not self._closed:
            self._size += 1  # a waiter lost its chance at this connection: open it another
            task = asyncio.get_running_loop().create_task(self._replace())
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)

    def _forget(self, conn: Connection) -> None:
        self._size -= 1
        self._generation.pop(conn, None)

    async def _replace(self) -> None:
        try:
            conn = await self._connect()
        except Exception as exc:
            self._size -= 1
            log.warning("could not open a database connection: %s", exc)
            return
        self.release(conn)


class Database:
    """The pool plus the timeouts and error translation every query gets."""

    def __init__(self, pool: ConnectionPool, options: PoolOptions) -> None:
        self.pool = pool
        self.options = options
        self.bells = Bells(self._notify)

    async def _notify(self, sql: str, *args: Any) -> None:
        await self.execute(sql, *args)

    @classmethod
    async def open(cls, url: str, options: PoolOptions | None = None) -> Database:
        options = options or PoolOptions()
        pool = ConnectionPool(url, options)
        await pool.open()
        return cls(pool, options)

    async def close(self) -> None:
        await self.bells.close()
        await self.pool.close()

    def ring(self, bell: str) -> None:
        """What the statement just run (autocommitted) changed: wake its readers."""
        self.bells.ring(bell)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        with translating():
            conn = await self.pool.acquire()
            try:
                yield conn
            except BaseException as exc:
                self.pool.release(conn, discard=_unsafe(exc))
                raise
            self.pool.release(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A transaction: committed on success, rolled back on any error; the bells it
        rang ring once it has committed."""
        async with self.connection() as conn:
            tx = Tx(conn)
            async with conn.transaction():
                yield tx
        for bell in tx.rings:
            self.bells.ring(bell)

    # The single-statement methods are the hot path: no context-manager layers, one acquire,
    # one release, errors translated once.

    async def fetch(self, sql: str, *args: Any) -> list[Record]:
        try:
            conn = await self.pool.acquire()
            try:
                rows = await conn.fetch(sql, *args)
            except BaseException as exc:
                self.pool.release(conn, discard=_unsafe(exc))
                raise
            self.pool.release(conn)
            return rows
        except _DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> Record | None:
        try:
            conn = await self.pool.acquire()
            try:
                row = await conn.fetchrow(sql, *args)
            except BaseException as exc:
                self.pool.release(conn, discard=_unsafe(exc))
                raise
            self.pool.release(conn)
            return row
        except _DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: Any) -> str:
        async with self.connection() as conn:
            return await conn.execute(sql, *args)


async def _close(conn: Connection) -> None:
    try:
        await conn.close(timeout=CLOSE_TIMEOUT_S)
    except Exception:
        conn.terminate()


def _unsafe(exc: BaseException) -> bool:
    """After cancellation, a client-side timeout, a driver/socket error or the server ending the
    session, a query may still be running on the connection or the driver's state is unknown: it
    must not be reused. Errors arrive here raw or already translated (a statement inside a
    transaction translates its own), so both are recognised. After any other error (PostgreSQL
    rejected a statement, or our own code raised between statements) it is fine."""
    return not isinstance(exc, Exception) or connection_failed(exc)


class Tx:
    """A connection inside a transaction, with the same methods (and translation) as Database."""

    __slots__ = ("conn", "rings")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.rings: set[str] = set()

    def ring(self, bell: str) -> None:
        """Wake the readers of `bell` once this transaction commits (never if it does not)."""
        self.rings.add(bell)

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
    if isinstance(exc, _DRIVER_ERRORS):
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
