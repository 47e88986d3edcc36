"""The HTTP/1.1 protocol `baas serve` runs: uvicorn's httptools protocol with a limit on the
request head (request line and headers), enforced while the head arrives.

llhttp has no such limit, and httptools gathers a header's value in memory until the header ends
(concatenating it again at every read), so one 100 MB header held every client of the process
for seconds. Here the bytes of a head are counted as they arrive: the URL as the parser hands it
over, headers as they end, and the raw bytes of a head still open at the end of each read. Past
`max_head` the client gets our JSON error, 414 `url_too_long` when the URL alone is over it and
431 `headers_too_large` otherwise; the connection then drops whatever else the client sends for
`LINGER_S` (so the client reads the answer rather than a reset) and closes.

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
_HEADER_OVERHEAD = 4  # ": " and CRLF around each header

log = logging.getLogger("baas")


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a head that is over the limit."""


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
        self._in_head = True  # what arrives now belongs to a request head
        self._head_bytes = 0  # raw bytes of the current head, as of the last read
        self._url_bytes = 0
        self._header_bytes = 0
        self._ended_in_read = False  # a request ended within the current read
        self._stopped_by: ApiError | None = None  # why a parser callback stopped the parser
        self._answered = False  # the refusal is sent
        self._linger: asyncio.TimerHandle | None = None

    # -- reading ----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return  # refused: the rest is dropped until the connection closes
        self._unset_keepalive_if_required()
        self._ended_in_read = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._stopped_by is not None:
                self._answer(self._stopped_by)
            else:
                message = "Invalid HTTP request received."
                self.logger.warning(message)
                self.send_400_response(message)
            return
        # The bytes of a read in which a request ended are not counted (where the next head
        # starts in them is unknown): a head gets one read's worth more, no more.
        if self._in_head and not self._ended_in_read:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head:
                self._answer(headers_too_large(self.max_head))

    # -- parser callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_bytes = self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self.max_head:
            self._stop(url_too_long(self.max_head))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + _HEADER_OVERHEAD
        if self._url_bytes + self._header_bytes > self.max_head:
            self._stop(headers_too_large(self.max_head))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes, self._ended_in_read = True, 0, True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    # -- refusing ---------------------------------------------------------------------------------

    def _stop(self, error: ApiError) -> None:
        self._stopped_by = error
        raise _Refused(error.code)

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
        f"the URL is longer than {limit} bytes; send long values in a request body",
        status=414,
        code="url_too_long",
        limit=limit,
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
