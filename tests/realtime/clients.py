# ruff: noqa: ASYNC109 - a `timeout` argument per call is the point of these test clients
"""WebSocket clients for the realtime tests.

`WsClient` wraps a `websockets` client connection and speaks the JSON protocol: it answers the
server's `{"type": "ping"}` itself (unless told not to), keeps messages it was not asked for in a
backlog, and flattens `changes` messages into their entries. `RawWs` is a hand-rolled client on a
plain socket for what a well-behaved library would hide: a consumer that stops reading (a small
SO_RCVBUF, so TCP really stops draining) and one that never answers anything.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections import deque
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

Message = dict[str, Any]


class Closed(AssertionError):
    """The connection closed while a message was awaited."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed (code {code}, reason {reason!r})")
        self.code = code


class WsClient:
    def __init__(self, conn: ClientConnection, *, auto_pong: bool = True) -> None:
        self.conn = conn
        self.auto_pong = auto_pong
        self.backlog: deque[Message] = deque()  # messages read but not yet asked for
        self.pending: deque[Message] = deque()  # change entries read but not yet asked for
        self.frames: list[str] = []  # every text frame received, raw
        self.pings = 0  # server pings seen (and answered when auto_pong)

    @classmethod
    async def open(cls, url: str, *, auto_pong: bool = True, **kwargs: Any) -> WsClient:
        options: dict[str, Any] = {
            "compression": None,
            "ping_interval": None,
            "open_timeout": 5,
            "close_timeout": 2,
            "max_size": 2**24,
        }
        conn = await connect(url, **{**options, **kwargs})
        return cls(conn, auto_pong=auto_pong)

    async def close(self) -> None:
        await self.conn.close()

    # -- sending -------------------------------------------------------------------------------

    async def send(self, msg: Message) -> None:
        await self.conn.send(json.dumps(msg))

    async def send_raw(self, data: str | bytes) -> None:
        await self.conn.send(data)

    # -- receiving -----------------------------------------------------------------------------

    async def _read(self, timeout: float) -> Message:
        """The next message off the wire (server pings are answered and skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                raw = await asyncio.wait_for(self.conn.recv(), remaining)
            except ConnectionClosed as exc:
                rcvd = exc.rcvd
                raise Closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "") from None
            assert isinstance(raw, str), f"binary frame from the server: {raw!r}"
            self.frames.append(raw)
            msg = json.loads(raw)
            assert isinstance(msg, dict) and isinstance(msg.get("type"), str), raw
            if msg["type"] == "ping":
                self.pings += 1
                if self.auto_pong:
                    await self.send({"type": "pong"})
                    continue
            return msg

    async def recv(self, timeout: float = 5) -> Message:
        """One message: the oldest in the backlog, else the next off the wire."""
        if self.backlog:
            return self.backlog.popleft()
        try:
            return await self._read(timeout)
        except TimeoutError:
            raise AssertionError(f"no message within {timeout}s") from None

    async def expect(self, type: str, timeout: float = 5, **fields: Any) -> Message:
        """The first message of `type` (others stay in the backlog); asserts `fields`. An error
        arriving while something else is expected fails at once, with the error."""
        for msg in list(self.backlog):
            if msg["type"] == type:
                self.backlog.remove(msg)
                return _check(msg, fields)
        deadline = time.monotonic() + timeout
        seen: list[Message] = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                msg = await self._read(remaining)
            except TimeoutError:
                raise AssertionError(
                    f"no {type!r} message within {timeout}s; meanwhile: {seen}"
                ) from None
            if msg["type"] == type:
                return _check(msg, fields)
            if msg["type"] == "error" and type != "error":
                raise AssertionError(f"expected {type!r} {fields}, got an error: {msg}")
            seen.append(msg)
            self.backlog.append(msg)

    async def error(self, code: str, timeout: float = 5, **fields: Any) -> Message:
        return await self.expect("error", timeout, code=code, **fields)

    async def request(self, msg: Message, reply: str, timeout: float = 5, **fields: Any) -> Message:
        await self.send(msg)
        return await self.expect(reply, timeout, **fields)

    async def subscribe(self, sub: str, collection: str, **options: Any) -> Message:
        """Subscribe and wait for `subscribed` (a refusal fails the test)."""
        msg = {"type": "subscribe", "id": sub, "collection": collection, **options}
        return await self.request(msg, "subscribed", id=sub)

    async def changes(self, n: int, timeout: float = 5) -> list[Message]:
        """The next `n` change entries, across `changes` messages, oldest first."""
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            if self.pending:
                out.append(self.pending.popleft())
                continue
            remaining = deadline - time.monotonic()
            try:
                msg = await self.expect("changes", max(remaining, 0.001))
            except AssertionError as exc:
                raise AssertionError(f"{len(out)} of {n} changes ({out}): {exc}") from None
            assert isinstance(msg.get("changes"), list) and msg["changes"], msg
            self.pending.extend(msg["changes"])
        return out

    async def change_for(self, sub: str, timeout: float = 5) -> Message:
        """The next change entry of subscription `sub`; entries of others stay pending."""
        skipped: list[Message] = []
        try:
            while True:
                entry = (await self.changes(1, timeout))[0]
                if entry["sub"] == sub:
                    return entry
                skipped.append(entry)
        finally:
            self.pending.extendleft(reversed(skipped))

    async def no_changes(self, within: float = 0.5) -> None:
        """Assert that no change arrives for `within` seconds (other messages are kept)."""
        assert not self.pending, f"unexpected changes: {list(self.pending)}"
        early = [m for m in self.backlog if m["type"] == "changes"]
        assert not early, f"unexpected changes: {early}"
        deadline = time.monotonic() + within
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = await self._read(remaining)
            except TimeoutError:
                return
            assert msg["type"] != "changes", f"unexpected changes: {msg}"
            self.backlog.append(msg)

    async def drain(self, quiet: float = 0.3, timeout: float = 5) -> list[Message]:
        """Every change entry until none has come for `quiet` seconds."""
        out = list(self.pending)
        self.pending.clear()
        for msg in [m for m in self.backlog if m["type"] == "changes"]:
            self.backlog.remove(msg)
            out.extend(msg["changes"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = await self._read(quiet)
            except TimeoutError:
                return out
            if msg["type"] == "changes":
                out.extend(msg["changes"])
            else:
                self.backlog.append(msg)
        raise AssertionError(f"changes kept coming for {timeout}s")

    async def nothing(self, within: float = 0.5) -> None:
        """Assert that no message at all arrives for `within` seconds."""
        assert not self.backlog, f"unexpected messages: {list(self.backlog)}"
        try:
            msg = await self._read(within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {msg}")

    async def closed(self, timeout: float = 5) -> int | None:
        """Read (and keep) messages until the server closes; its close code."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                self.backlog.append(await self._read(remaining))
            except Closed as exc:
                return exc.code
            except TimeoutError:
                raise AssertionError(f"still open after {timeout}s") from None


def _check(msg: Message, fields: dict[str, Any]) -> Message:
    for key, value in fields.items():
        assert msg.get(key) == value, f"{key}: expected {value!r} in {msg}"
    return msg


# -- a raw WebSocket client --------------------------------------------------------------------

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class RawWs:
    """A WebSocket client on a plain non-blocking socket, reading only when told to."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.received = 0  # bytes read off the socket
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def open(
        cls, host: str, port: int, path: str = "/api/realtime", rcvbuf: int | None = None
    ) -> RawWs:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:  # before connect, so the advertised window stays small
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            raw = cls(sock)
            await asyncio.wait_for(raw.loop.sock_connect(sock, (host, port)), 5)
            key = base64.b64encode(os.urandom(16)).decode()
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            )
            await raw.loop.sock_sendall(sock, request.encode())
            while b"\r\n\r\n" not in raw.buf:
                chunk = await asyncio.wait_for(raw.loop.sock_recv(sock, 4096), 5)
                assert chunk, f"closed during the handshake: {raw.buf!r}"
                raw.buf += chunk
            head, raw.buf = raw.buf.split(b"\r\n\r\n", 1)
            status = head.split(b"\r\n", 1)[0]
            assert b" 101 " in status, f"handshake refused: {head!r}"
            return raw
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    async def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await self.loop.sock_sendall(self.sock, header + mask + masked)

    async def send_json(self, msg: Message) -> None:
        await self.send_frame(OP_TEXT, json.dumps(msg).encode())

    async def _fill(self, n: int, deadline: float) -> bool:
        """Read until `n` bytes are buffered; False at end of stream (or a reset)."""
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                chunk = await asyncio.wait_for(self.loop.sock_recv(self.sock, 65536), remaining)
            except ConnectionResetError:
                return False
            if not chunk:
                return False
            self.received += len(chunk)
            self.buf += chunk
        return True

    async def recv_frame(self, timeout: float = 5) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next frame; None at end of stream."""
        deadline = time.monotonic() + timeout
        if not await self._fill(2, deadline):
            return None
        first, second = self.buf[0], self.buf[1]
        assert not second & 0x80, "the server masked a frame"
        length, offset = second & 0x7F, 2
        if length == 126:
            if not await self._fill(4, deadline):
                return None
            (length,), offset = struct.unpack("!H", self.buf[2:4]), 4
        elif length == 127:
            if not await self._fill(10, deadline):
                return None
            (length,), offset = struct.unpack("!Q", self.buf[2:10]), 10
        if not await self._fill(offset + length, deadline):
            return None
        payload = self.buf[offset : offset + length]
        self.buf = self.buf[offset + length :]
        return first & 0x0F, payload

    async def recv_json(self, timeout: float = 5) -> Message:
        """The next JSON message (protocol pings are answered; JSON pings are returned)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.recv_frame(max(deadline - time.monotonic(), 0.001))
            assert frame is not None, "the server closed the stream"
            opcode, payload = frame
            if opcode == OP_PING:
                await self.send_frame(OP_PONG, payload)
                continue
            assert opcode == OP_TEXT, f"frame {opcode}: {payload[:200]!r}"
            msg = json.loads(payload)
            assert isinstance(msg, dict), msg
            return msg

    async def expect(self, type: str, timeout: float = 5) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv_json(max(deadline - time.monotonic(), 0.001))
            if msg["type"] == type:
                return msg
            assert msg["type"] != "error", msg

    async def close_code(self, timeout: float = 10) -> int | None:
        """Drain the stream until it ends: the close frame's code, or None when it ended (or
        was reset) without one."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                frame = await self.recv_frame(max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                raise AssertionError(f"the stream did not end within {timeout}s") from None
            if frame is None:
                return None
            opcode, payload = frame
            if opcode == OP_CLOSE:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
