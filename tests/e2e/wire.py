"""A raw HTTP/1.1 client over a socket, for tests of what a real server puts on the wire.

It sends the bytes it is given and reads the answer to the end of the connection (requests say
`Connection: close`), then checks the framing itself: a body must be exactly as long as its
Content-Length (or its chunks say), and a HEAD, 204 or 304 answer has no body at all. httpx would
hide a short body behind an exception of its own, or a long one behind the next request.
`Connection` keeps one connection open for several requests (keep-alive, pipelining).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

import orjson

TIMEOUT_S = 10.0


class FramingError(AssertionError):
    """The server sent a body of another length than it announced."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header's values joined with ", "
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return orjson.loads(self.body)


def connect(port: int, timeout: float = TIMEOUT_S) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def request(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> Answer:
    """One request on a fresh connection, its answer read and checked."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return exchange(port, head + body, method=method)


def exchange(port: int, raw: bytes, *, method: str = "GET") -> Answer:
    """Send `raw` as it is, read until the server closes, and parse the one answer."""
    with connect(port) as sock:
        sock.sendall(raw)
        return parse(read_all(sock), method)


def read_all(sock: socket.socket) -> bytes:
    """Everything until the peer closes; a reset ends it like a close (what was read stays)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


class Connection:
    """A connection that stays open: requests sent as raw bytes, answers read one by one, each
    exactly as long as its framing says (what follows it is kept for the next one)."""

    def __init__(self, port: int) -> None:
        self.sock = connect(port)
        self._buffer = b""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def answer(self, method: str = "GET", timeout: float = TIMEOUT_S) -> Answer:
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += _recv(self.sock, deadline)
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        status, headers = _head(head)
        length = 0 if _bodiless(method, status) else int(headers.get("content-length", 0))
        while len(self._buffer) < length:
            self._buffer += _recv(self.sock, deadline)
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return Answer(status, headers, body)


def parse(data: bytes, method: str = "GET") -> Answer:
    """The answer in `data` (a whole connection's bytes), its framing checked."""
    head, separator, rest = data.partition(b"\r\n\r\n")
    if not separator:
        raise FramingError(f"no complete answer head in {data[:200]!r}")
    status, headers = _head(head)
    if _bodiless(method, status):
        if rest:
            raise FramingError(f"{method} answered {status} with a body of {len(rest)} bytes")
        return Answer(status, headers, b"")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return Answer(status, headers, _unchunked(rest))
    if "content-length" in headers:
        return Answer(status, headers, _framed(rest, int(headers["content-length"])))
    return Answer(status, headers, rest)  # delimited by the close


def _bodiless(method: str, status: int) -> bool:
    return method == "HEAD" or status in (204, 304) or 100 <= status < 200


def _framed(rest: bytes, length: int) -> bytes:
    if len(rest) != length:
        raise FramingError(f"Content-Length {length}, body {len(rest)} bytes")
    return rest


def _head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ", 2)
    assert version == "HTTP/1.1", status_line
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return int(status), headers


def _unchunked(rest: bytes) -> bytes:
    body = b""
    while True:
        size_line, separator, rest = rest.partition(b"\r\n")
        if not separator:
            raise FramingError("chunked body cut short")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            if rest != b"\r\n":
                raise FramingError(f"bytes after the last chunk: {rest[:100]!r}")
            return body
        if len(rest) < size + 2 or rest[size : size + 2] != b"\r\n":
            raise FramingError("chunk cut short")
        body, rest = body + rest[:size], rest[size + 2 :]


def _recv(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(max(deadline - time.monotonic(), 0.01))
    chunk = sock.recv(65536)
    if not chunk:
        raise FramingError("the server closed the connection before the answer was complete")
    return chunk
