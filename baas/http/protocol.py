"""The HTTP/1.1 protocol `baas serve` runs: uvicorn's httptools protocol with a limit on the
request head (request line and headers), enforced while the head arrives.

llhttp has no such limit, and httptools gathers a header's value in memory until the header ends
(concatenating it again at every read), so one 100 MB header held every client of the process
for seconds. Here the bytes of a head are counted read by read while it is open, and a head that
ends in a read that may take it past the limit is measured when it ends (before its request
starts). Past `max_head` the client gets our JSON error, 414 `url_too_long` when the request
line alone is over it and 431 `headers_too_large` otherwise; the connection then drops whatever
else the client sends for `LINGER_S` (so the client reads the answer rather than a reset) and
closes. A normal request costs the count about half a microsecond.

The limit travels in uvicorn's Config as `h11_max_incomplete_event_size`, which is the same limit
for uvicorn's h11 protocol: either protocol refuses the same heads.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from baas.config import Settings
from baas.errors import ApiError, error_body
from baas.http.responses import dumps

LINGER_S = 2.0  # how long a refused connection reads and drops what still comes
_REQUEST_LINE_OVERHEAD = len(" HTTP/1.1\r\n") + 1  # and the space after the method
_HEADER_OVERHEAD = len(": \r\n")

log = logging.getLogger("baas")


class _Refused(Exception):
    """Raised in a parser callback to stop the parser at a head over the limit."""


class HeadLimitedProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head = config.h11_max_incomplete_event_size or Settings.max_header_bytes
        self._head_bytes = 0  # bytes of the head still open, as of the end of the last read
        self._measure = False  # this read may take a head past the limit: measure heads that end
        self._stopped_by: ApiError | None = None  # why a parser callback stopped the parser
        self._answered = False  # the refusal is sent
        self._linger: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return  # refused: the rest is dropped until the connection closes
        self._unset_keepalive_if_required()
        scope, cycle = self.scope, self.cycle
        body_pending = cycle is not None and cycle.more_body
        self._measure = self._head_bytes + len(data) > self.max_head
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            self._answer(self._stopped_by or malformed_request())
            return
        self._count(len(data), scope is self.scope, self.cycle is cycle and not body_pending)

    def _count(self, size: int, same_head: bool, only_head: bool) -> None:
        """Add a read of `size` bytes to the open head: all of it when the head was open before
        the read (`same_head`) or the read held nothing else (`only_head`: it began between
        requests and no head ended in it); else none (where the head began in it is unknown,
        so a head gets one read's worth more, no more)."""
        if self.cycle is not None and self.cycle.scope is self.scope:
            self._head_bytes = 0  # no head is open
        elif same_head:
            self._head_bytes += size
        else:
            self._head_bytes = size if only_head else 0
        if self._head_bytes > self.max_head:
            self._answer(self._over_limit())

    def on_headers_complete(self) -> None:
        if self._measure and self._head_size() > self.max_head:
            self._stopped_by = self._over_limit()
            raise _Refused(self._stopped_by.code)  # stops the parser: no task is started
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def _request_line_size(self) -> int:
        """The bytes of the request line (as far as its URL has arrived)."""
        return len(self.parser.get_method()) + len(self.url) + _REQUEST_LINE_OVERHEAD

    def _head_size(self) -> int:
        """The bytes of the head being parsed, as sent (but for spaces around header values)."""
        headers = sum(len(name) + len(value) for name, value in self.headers)
        return self._request_line_size() + headers + _HEADER_OVERHEAD * len(self.headers) + 2

    def _over_limit(self) -> ApiError:
        if self._request_line_size() > self.max_head:
            return url_too_long(self.max_head)
        return headers_too_large(self.max_head)

    def _answer(self, error: ApiError) -> None:
        self._answered = True
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.warning("refused a request from %s: %s", peer, error.message)
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an answer is under way on this connection: no room for ours
            return
        self.transport.write(_response(error, self.server_state.default_headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger = self.loop.call_later(LINGER_S, self.transport.close)


def url_too_long(limit: int) -> ApiError:
    return ApiError(
        f"the request line (method, URL, version) is longer than {limit} bytes; send long values"
        " in a request body",
        status=414,
        code="url_too_long",
        limit=limit,
    )


def malformed_request() -> ApiError:
    """A head the HTTP/1.1 parser cannot read (a bad request line or header): answered in our
    JSON error shape like every other refusal, not as the server library's plain text. (Once a
    request is under way, bad body framing can only close the connection.)"""
    return ApiError(
        "the request is not valid HTTP/1.1 (its request line or a header); "
        "percent-encode the URL and check the headers",
        status=400,
        code="malformed_request",
    )


def headers_too_large(limit: int) -> ApiError:
    return ApiError(
        f"the request line and headers are larger than {limit} bytes together; send fewer or "
        "smaller headers (cookies, tokens) and a shorter URL",
        status=431,
        code="headers_too_large",
        limit=limit,
    )


def _response(error: ApiError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole HTTP/1.1 answer: our JSON error, and the connection closes after it."""
    body = dumps(error_body(error))
    headers = [
        *default_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
        (b"connection", b"close"),
    ]
    status = f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n".encode()
    return b"".join(
        [status, *(name + b": " + value + b"\r\n" for name, value in headers), b"\r\n", body]
    )
