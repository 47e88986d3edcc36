"""The request middleware (pure ASGI, one layer for speed): request id, identity, body limit,
security headers, the access log, and the last word on errors.

Identity comes from the `authenticate` callable the app passes in (no database round trip). The
body limit refuses a declared Content-Length at once and counts streamed bytes otherwise.
Every request gets one access log entry with the status it was answered (500s included). An
unhandled error is logged here once, with its traceback, and answered with the JSON 500 (nothing
reaches the server to be logged again); a client that goes away mid-body ends its request
quietly (status 499 in the access log): its handler stops at the read, before writing anything.
WebSocket connections pass through untouched: their endpoint authenticates them itself.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from baas.auth.identity import Identity
from baas.errors import ApiError, PayloadTooLarge, error_body, internal_error_body
from baas.http.access_log import AccessLog, printable
from baas.http.responses import dumps

RAW_SEND_KEY = "baas.send"  # websockets: the server's own send (realtime writes frames with it)
CLIENT_CLOSED = 499  # the access log's status of a request whose client went away mid-body

Authenticate = Callable[[Scope, str | None], Identity]  # Scope: a MutableMapping
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
log = logging.getLogger("baas")


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticate: Authenticate,
        max_body_bytes: int,
        https: bool,
        access_log: AccessLog | None,
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.headers = _page_headers(https)
        self.api_headers = _api_headers(https)
        self.public_api_headers = [h for h in self.api_headers if h[0] != b"cache-control"]
        # Request ids: unique per process (random prefix) and cheap (a counter), not secret.
        self._id_prefix = secrets.token_hex(12)
        self._ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                scope[RAW_SEND_KEY] = send
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scanned = _scan(scope["headers"])
        request_id = scanned.request_id or f"{self._id_prefix}{next(self._ids) & 0xFFFFFFFF:08x}"
        scope["baas.request_id"] = request_id
        status = 0
        path = scope["path"]
        if not path.startswith("/api/"):
            fixed = self.headers
        elif path in PUBLIC_CACHEABLE:  # the same for everyone: the handler says how long
            fixed = self.public_api_headers
        else:
            fixed = self.api_headers
        extra = [(b"x-request-id", request_id.encode()), *fixed]

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
                await send(message)
                status = message["status"]
                return
            await send(message)

        try:
            await self._serve(scope, receive, send_with_headers, request_id, scanned)
        except ClientDisconnect:  # the client went away mid-body: the request just ends
            status = status or CLIENT_CLOSED
        except Exception as exc:
            _log_unhandled(scope, request_id, exc)
            if not status:  # (once an answer has started, the server cuts the connection)
                await _send_json(send_with_headers, 500, internal_error_body(request_id))
        if self.access_log is not None:
            elapsed = (time.perf_counter() - started) * 1000
            self.access_log.record(scope["method"], path, status or 500, elapsed, request_id)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, scanned: _Scanned
    ) -> None:
        """Authenticate, check the declared body size, and run the app with the body bounded."""
        _, authorization, length, form = scanned
        path = scope["path"]
        try:
            scope["baas.identity"] = self.authenticate(scope, authorization)
            # Uploads to records are bounded part by part by the multipart reader (the file
            # fields' max_size, the other fields' max_body_bytes), not as a whole.
            upload = form and path.startswith(UPLOAD_PATHS)
            if (
                not upload
                and length is not None
                and (not length.isdigit() or int(length) > self.max_body_bytes)
            ):
                raise _too_large(self.max_body_bytes)
        except ApiError as exc:
            await _send_json(send, exc.status, error_body(exc, request_id), exc.headers)
            return
        unbounded = upload or scope["method"] in _BODILESS
        await self.app(scope, receive if unbounded else self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        remaining = self.max_body_bytes

        async def receive_limited() -> Message:
            nonlocal remaining
            message = await receive()
            if message["type"] == "http.request":
                remaining -= len(message.get("body", b""))
                if remaining < 0:
                    raise _too_large(self.max_body_bytes)
            return message

        return receive_limited


UPLOAD_PATHS = "/api/collections/"  # record writes, where multipart bodies carry files
PUBLIC_CACHEABLE = frozenset({"/api/auth/jwks.json"})
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})  # handlers never read a body
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def _api_headers(https: bool) -> list[tuple[bytes, bytes]]:
    """JSON answers: never sniffed, never framed or rendered, never cached (records may be
    private). Fewer headers than pages: every one costs time on every request."""
    headers = [
        _NOSNIFF,
        (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        (b"cache-control", b"no-store"),
    ]
    return [*headers, _HSTS] if https else headers


def _page_headers(https: bool) -> list[tuple[bytes, bytes]]:
    """Everything else (pages of the console to come)."""
    headers = [
        _NOSNIFF,
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    return [*headers, _HSTS] if https else headers


class _Scanned(NamedTuple):
    request_id: str | None  # a sane X-Request-Id
    authorization: str | None
    length: bytes | None  # Content-Length
    form: bool  # is the body multipart/form-data?


def _scan(headers: list[tuple[bytes, bytes]]) -> _Scanned:
    """One pass over the headers."""
    request_id = authorization = None
    length = None
    form = False
    for name, value in headers:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-length":
            length = value
        elif name == b"content-type":
            form = value[:19].lower() == b"multipart/form-data"
        elif name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(candidate):
                request_id = candidate
    return _Scanned(request_id, authorization, length, form)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes", limit=limit)


async def _send_json(
    send: Send, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    data = dumps(body)
    fields: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
    ]
    fields += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": data})


def _log_unhandled(scope: Scope, request_id: str, exc: Exception) -> None:
    """The one log entry of an unhandled error: where it happened, and its traceback."""
    method, path = (printable(scope[k], spaces=True) for k in ("method", "path"))
    log.error("unhandled error in %s %s (request %s)", method, path, request_id, exc_info=exc)
