"""Writing realtime frames straight to the socket, when the server lets us.

Fan-out sends one frame per subscriber per batch: at thousands of subscribers, the per-frame cost
of the ASGI path (a task switch, Starlette's and uvicorn's send coroutines, the websockets
library's framing) is most of the server's CPU. Under uvicorn's sans-I/O websockets protocol
(what `baas serve` runs) a text frame can instead be framed here and written to the transport in
one call, from the loop callback that flushes every dirty connection at once.

`direct_writer` returns None under any other server or implementation, and the connection keeps
the ASGI path: nothing depends on the fast path but speed. The raw ASGI `send` reaches us as
`scope[RAW_SEND_KEY]` (set by the request middleware, before Starlette wraps it).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any, Protocol

try:  # the one implementation whose internals the fast path knows
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State
except ImportError:  # pragma: no cover - another server
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

from baas.http.middleware import RAW_SEND_KEY
from baas.realtime import slices

log = logging.getLogger("baas.realtime")
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")
_TEXT = 0x81  # FIN + text opcode; server frames are never masked
_CHANGES_HEAD = b'{"type":"changes","changes":['


def text_frame(payload: bytes) -> bytes:
    """A complete, unfragmented, unmasked text frame holding `payload` (UTF-8)."""
    size = len(payload)
    if size < 126:
        return _SHORT.pack(_TEXT, size) + payload
    if size < 65536:
        return _MEDIUM.pack(_TEXT, 126, size) + payload
    return _LONG.pack(_TEXT, 127, size) + payload


def changes_message(entries: list[bytes]) -> bytes:
    """Change entries (JSON objects) as one `changes` message."""
    return _CHANGES_HEAD + b",".join(entries) + b"]}"


class DirectWriter:
    """Writes text frames to one open uvicorn websocket transport, or says it cannot now."""

    __slots__ = ("_proto",)

    def __init__(self, proto: Any) -> None:
        self._proto = proto

    def ready(self) -> bool:
        """Open, not closing and not paused by flow control (the handshake was done before the
        connection was made; a lost connection's transport is closing)."""
        p = self._proto
        return (
            p.writable.is_set()
            and not p.close_sent
            and p.conn.state is State.OPEN
            and not p.transport.is_closing()
        )

    def write(self, data: bytes) -> None:
        """Write complete frames."""
        self._proto.transport.write(data)


def direct_writer(scope: MutableMapping[str, Any]) -> DirectWriter | None:
    """A writer for this websocket's socket, or None when the server is not one we know."""
    send: Callable[..., Any] | None = scope.get(RAW_SEND_KEY)
    proto = getattr(send, "__self__", None)
    if WebSocketsSansIOProtocol is None or not isinstance(proto, WebSocketsSansIOProtocol):
        return None
    if proto.conn.extensions:  # permessage-deflate: frames must go through the library
        return None
    return DirectWriter(proto)


class Flushable(Protocol):
    def flush(self, flusher: Flusher) -> None: ...


class Flusher:
    """Drains every connection that queued something, once per loop iteration, in one callback
    (instead of waking a task per connection), a slice of a few milliseconds at a time: the
    connections left over go on at the next iteration, after what else is ready (requests).

    Subscribers with the same view of a batch are handed the same entry object, and are marked
    one after another: the last outbox framed is kept (by identity: no hashing, no growth) so a
    run of them is framed once and written many times."""

    def __init__(self) -> None:
        self._dirty: deque[Flushable] = deque()
        self._scheduled = False
        self._last: list[bytes] = []
        self._last_frame = b""

    def frame(self, entries: list[bytes]) -> bytes:
        """The `changes` frame of an outbox of change entries."""
        if entries != self._last:  # element identity first: a shared run costs no compare
            self._last = entries
            self._last_frame = text_frame(changes_message(entries))
        return self._last_frame

    def mark(self, conn: Flushable) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        dirty = self._dirty
        turn = slices.Slice()
        while dirty:
            conn = dirty.popleft()
            try:
                conn.flush(self)
            except Exception:
                log.exception("realtime flush failed")
            if dirty and turn.spent():  # the rest at the next iteration
                asyncio.get_running_loop().call_soon(self._flush)
                return
        self._scheduled = False
        self._last, self._last_frame = [], b""
