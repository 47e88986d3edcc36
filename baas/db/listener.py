"""LISTEN on a dedicated connection, reconnecting forever; PostgreSQL is the message bus.

Handlers are called with the payload of each NOTIFY on their channel. After every (re)connect the
`on_connect` callbacks run, so state that may have changed while disconnected is reloaded: a
notification missed during an outage is never relied upon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from baas.db.pool import Connection, PoolOptions, connect

log = logging.getLogger("baas.db.listener")

Handler = Callable[[str], Coroutine[Any, Any, None]]
OnConnect = Callable[[], Awaitable[None]]


class Listener:
    def __init__(self, url: str, options: PoolOptions | None = None) -> None:
        self.url = url
        self.options = options or PoolOptions()
        self._handlers: dict[str, list[Handler]] = {}
        self._on_connect: list[OnConnect] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: Connection | None = None
        self._ready = asyncio.Event()
        self._lost = asyncio.Event()

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    def on_connect(self, callback: OnConnect) -> None:
        self._on_connect.append(callback)

    async def start(self) -> None:
        """Connect and listen; returns once the first LISTEN is in place."""
        await self._connect()
        self._task = asyncio.create_task(self._supervise(), name="baas-listener")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close(timeout=2)

    async def _connect(self) -> None:
        conn = await connect(self.url, self.options)
        self._lost.clear()
        conn.add_termination_listener(lambda _c: self._lost.set())
        for channel in self._handlers:
            await conn.add_listener(channel, self._dispatch)
        self._conn = conn
        for callback in self._on_connect:
            await callback()

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        for handler in self._handlers.get(channel, []):
            task = asyncio.get_running_loop().create_task(_handle(handler, str(payload)))
            task.add_done_callback(_log_failure)

    async def _supervise(self) -> None:
        delay = 0.2
        while True:
            await self._lost.wait()
            log.warning("lost the LISTEN connection; reconnecting")
            while True:
                try:
                    await self._connect()
                    log.info("LISTEN connection restored")
                    delay = 0.2
                    break
                except Exception as exc:
                    log.warning("reconnect failed (%s); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)


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
    if not task.cancelled() and task.exception() is not None:
        log.error("notification handler failed", exc_info=task.exception())
