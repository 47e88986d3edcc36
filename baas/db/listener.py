"""LISTEN on a dedicated connection, reconnecting forever; PostgreSQL is the message bus.

Handlers are called with the payload of each NOTIFY on their channel. After every (re)connect the
`on_connect` callbacks run, so state that may have changed while disconnected is reloaded: a
notification missed during an outage is never relied upon. While the database is down it retries
with backoff and logs the outage once, when it begins and when it ends (`baas.loops`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from baas.db.errors import DatabaseUnavailable
from baas.db.pool import CLOSE_TIMEOUT_S, Connection, PoolOptions, connect
from baas.loops import Outage, unavailable

log = logging.getLogger("baas.db.listener")

Handler = Callable[[str], Coroutine[Any, Any, None]]
OnConnect = Callable[[], Awaitable[None]]
PING_S = 15.0  # a LISTEN connection quiet this long is asked whether it still answers
PING_TIMEOUT_S = 5.0


class Listener:
    def __init__(self, url: str, options: PoolOptions | None = None) -> None:
        self.url = url
        self.options = options or PoolOptions()
        self._handlers: dict[str, list[Handler]] = {}
        self._on_connect: list[OnConnect] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: Connection | None = None
        self._lost = asyncio.Event()
        self._outage = Outage("LISTEN listener", log)

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    def on_connect(self, callback: OnConnect) -> None:
        self._on_connect.append(callback)

    @property
    def alive(self) -> bool:
        """Listening, or trying to again (it stops only when told to)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Connect and listen; returns once the first LISTEN is in place."""
        await self._connect()
        self._task = asyncio.create_task(self._supervise(), name="baas-listener")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    async def _connect(self) -> None:
        """A new connection with every LISTEN in place, then the on_connect reloads; on any
        failure the half-made connection is closed (never two connections listening)."""
        conn = await connect(self.url, self.options)
        self._lost.clear()
        self._conn = conn
        conn.add_termination_listener(self._terminated)
        try:
            for channel in self._handlers:
                await conn.add_listener(channel, self._dispatch)
            for callback in self._on_connect:
                await callback()
        except BaseException:
            self._conn = None
            conn.terminate()
            raise

    def _terminated(self, conn: object) -> None:
        if conn is self._conn:  # not one given up on already
            self._lost.set()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=CLOSE_TIMEOUT_S)
            except Exception:
                conn.terminate()

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        for handler in self._handlers.get(channel, []):
            task = asyncio.get_running_loop().create_task(_handle(handler, str(payload)))
            task.add_done_callback(_log_failure)

    async def _supervise(self) -> None:
        while True:
            await self._until_lost()
            await self._close()
            # the loss starts an outage (one line); the first reconnect is at once
            self._outage.failed(DatabaseUnavailable("the LISTEN connection was lost"))
            while True:
                try:
                    await self._connect()
                except Exception as exc:
                    await self._outage.pause(exc)
                    continue
                self._outage.recovered()
                break

    async def _until_lost(self) -> None:
        """Return when the connection closed, or stopped answering (a half-open TCP link to a
        server that went away without a word is noticed only by asking)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PING_S):
                    await self._lost.wait()
                return
            if not await self._answers():
                return

    async def _answers(self) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await conn.execute("SELECT 1")
        except Exception:
            return False
        return True


RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


async def _handle(handler: Handler, payload: str) -> None:
    """Run a handler, retrying while it fails (a pool exhausted for a moment must not leave
    this process on stale state: revocations, keys, schema)."""
    for delay in RETRY_DELAYS_S:
        try:
            await handler(payload)
            return
        except Exception as exc:
            log.warning("notification handler failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
    await handler(payload)


def _log_failure(task: asyncio.Task[None]) -> None:
    exc = None if task.cancelled() else task.exception()
    if exc is None:
        return
    if unavailable(exc):  # the database went away meanwhile; on_connect reloads after it
        log.warning("notification handler gave up: %s", exc)
    else:
        log.error("notification handler failed", exc_info=exc)
