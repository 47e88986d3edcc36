"""One realtime connection: who it is, what it subscribed to, and its bounded outbox.

The hub never waits for a client: it appends to the outbox and moves on. Outboxes are drained
once per loop iteration by the `Flusher` (several queued changes to one `changes` frame), straight
to the socket while it takes data (`wire.py`); a connection whose socket is paused, or a server
without the fast path, is drained by its own sender task through ASGI at the pace the client
reads. A client that falls more than `realtime_max_queued_bytes` behind is cut off (close 4008)
and its outbox dropped, so a slow reader costs bounded memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket

from baas.auth.identity import ANONYMOUS, Identity
from baas.config import Settings
from baas.realtime.access import Spec
from baas.realtime.protocol import CLOSE_SLOW, render
from baas.realtime.wire import Flusher, changes_message, direct_writer, text_frame

CLOSE_WAIT_S = 10.0
RATE_WINDOW_S = 10.0


@dataclass(eq=False, slots=True)
class Subscription:
    conn: Connection
    id: str
    collection: str
    record: str | None
    spec: Spec
    fields: tuple[str, ...] | None = None
    head: bytes = b""  # `{"sub":"<id>",` : each entry starts with it
    buffer: list[bytes] | None = field(default=None)  # live entries held while replaying

    def deliver(self, entry: bytes) -> None:
        if self.buffer is not None:
            self.buffer.append(entry)
            self.conn.count(len(entry))
        else:
            self.conn.event(entry)


class Connection:
    def __init__(
        self,
        ws: WebSocket,
        ip: str | None,
        settings: Settings,
        on_cut: Callable[[Connection], None],
        flusher: Flusher,
    ) -> None:
        self.ws = ws
        self.ip = ip
        self.identity: Identity = ANONYMOUS
        self.expires_at: float | None = None
        self.subs: dict[str, Subscription] = {}
        self.channels: dict[str, str] = {}  # channel -> this connection's member id there
        self.closed: int | None = None  # the close code, once cut
        self._out: list[bytes | str] = []  # change entries (bytes) and own messages (str)
        self._texts = 0  # own messages in _out
        self._queued = 0
        self._limit = settings.realtime_max_queued_bytes
        self._rate = float(settings.realtime_max_messages_per_s)
        self._budget = self._rate * RATE_WINDOW_S
        now = time.monotonic()
        self._budget_at = now
        self.last_heard = now
        self.last_ping = now
        self._wake = asyncio.Event()
        self._drained: asyncio.Event | None = None  # set when all queued went out, while awaited
        self._on_cut = on_cut
        self._flusher = flusher
        self._writer = direct_writer(ws.scope)
        self._marked = False  # waiting for the flusher
        self._busy = False  # the sender task holds frames: later ones go after them
        self._sender = asyncio.create_task(self._send_loop(), name="baas-realtime-send")
        self._closer: asyncio.Task[None] | None = None

    @property
    def direct(self) -> bool:
        """Frames go straight to the socket (`wire.py`) rather than through ASGI."""
        return self._writer is not None

    # -- what the client sends ----------------------------------------------------------------

    def heard(self) -> bool:
        """A message came: note it; False when the client is over its message rate."""
        now = time.monotonic()
        self.last_heard = now
        capacity = self._rate * RATE_WINDOW_S
        self._budget = min(capacity, self._budget + (now - self._budget_at) * self._rate)
        self._budget_at = now
        self._budget -= 1
        return self._budget >= 0

    # -- what it is sent ----------------------------------------------------------------------

    def event(self, entry: bytes) -> None:
        """Queue one change entry (a JSON object, without the surrounding message)."""
        if self.closed is None:
            self._out.append(entry)
            self._woken()
            self.count(len(entry))

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message of its own (replies, errors, presence, ...)."""
        if self.closed is None:
            text = render(message)
            self._out.append(text)
            self._texts += 1
            self._woken()
            self.count(len(text))

    async def put(self, entry: bytes) -> None:
        """Queue an entry once all that was queued before it went out (replays: the wait,
        not the slow-client limit, bounds what a long replay holds)."""
        while self.closed is None and (self._out or self._busy):
            if self._drained is None:
                self._drained = asyncio.Event()
            await self._drained.wait()
        if self.closed is None:  # not counted: it waits, where live entries cannot
            self._out.append(entry)
            self._woken()

    def _woken(self) -> None:
        if self._writer is None or self._busy:
            self._wake.set()
        elif not self._marked:
            self._marked = True
            self._flusher.mark(self)

    def _went_out(self) -> None:
        """All that was queued went out: wake whoever waits for that."""
        if self._drained is not None:
            self._drained.set()
            self._drained = None

    def flush(self, flusher: Flusher) -> None:
        """Write what is queued straight to the socket, or leave it to the sender task."""
        self._marked = False
        out = self._out
        if self.closed is not None or not out:
            return
        writer = self._writer
        if self._busy or writer is None or not writer.ready():
            self._wake.set()
            return
        if self._texts:
            data = b"".join([text_frame(frame) for frame in _frames(out)])
        else:
            data = flusher.frame(out)  # type: ignore[arg-type]  # entries only
        self._out, self._texts, self._queued = [], 0, 0
        writer.write(data)
        self._went_out()

    def count(self, size: int) -> None:
        self._queued += size
        if self._queued > self._limit:
            self.cut(CLOSE_SLOW, "too slow: reconnect with since")

    def cut(self, code: int, reason: str) -> None:
        """Close the connection with `code`, dropping what was queued; the hub forgets it."""
        if self.closed is not None:
            return
        self.closed = code
        self._out, self._texts, self._queued = [], 0, 0
        self._went_out()  # nothing more will go out: waiters stop waiting
        self._sender.cancel()
        self._on_cut(self)
        self._closer = asyncio.create_task(self._close(code, reason), name="baas-realtime-close")

    async def _close(self, code: int, reason: str) -> None:
        # Waits while the client reads nothing (the close frame queues behind unread data).
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_WAIT_S):
                await self.ws.close(code, reason)

    async def finish(self) -> None:
        """The socket is gone: stop sending."""
        if self.closed is None:
            self.closed = 1000
            self._out, self._texts = [], 0
            self._went_out()
            self._on_cut(self)
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._sender
        if self._closer is not None:
            await self._closer

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._busy = True
            try:
                while self._out:
                    items, self._out, self._texts, self._queued = self._out, [], 0, 0
                    for frame in _frames(items):
                        await self.ws.send_text(frame.decode())
            finally:
                self._busy = False
            self._went_out()


def _frames(items: list[bytes | str]) -> Iterator[bytes]:
    """Queued items as frames: runs of change entries joined into one `changes` message."""
    run: list[bytes] = []
    for item in items:
        if isinstance(item, bytes):
            run.append(item)
            continue
        if run:
            yield changes_message(run)
            run = []
        yield item.encode()
    if run:
        yield changes_message(run)
