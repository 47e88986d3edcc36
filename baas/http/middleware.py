"""The request middleware (pure ASGI, one layer for speed): request id, identity, body limit,
security headers and the access log.

Identity comes from the `authenticate` callable the app passes in (no database round trip). The
body limit refuses a declared Content-Length at once and counts streamed bytes otherwise.
WebSocket connections pass through untouched: their endpoint authenticates them itself.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from baas.auth.identity import Identity
from baas.errors import ApiError, PayloadTooLarge, error_body
from baas.http.responses import dumps

access_log = logging.getLogger("baas.access")

Authenticate = Callable[[Scope, str | None], Identity]  # Scope: a MutableMapping
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticate: Authenticate,
        max_body_bytes: int,
        https: bool,
        log_requests: bool,
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.max_body_bytes = max_body_bytes
        self.log_requests = log_requests
        self.headers = _security_headers(https)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope["baas.request_id"] = request_id
        started = time.perf_counter()
        status = 0
        api = scope["path"].startswith("/api/")
        extra = [(b"x-request-id", request_id.encode()), *self.headers]
        if api:
            extra += _API_HEADERS

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            scope["baas.identity"] = self.authenticate(scope, _authorization(scope))
            _check_declared_length(scope, self.max_body_bytes)
        except ApiError as exc:
            await _send_error(send_with_headers, exc, request_id)
        else:
            await self.app(scope, self._limited(receive), send_with_headers)
        if self.log_requests:
            elapsed = (time.perf_counter() - started) * 1000
            access_log.info(
                "%s %s %s %.1fms %s", scope["method"], scope["path"], status, elapsed, request_id
            )

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


_API_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]


def _security_headers(https: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if https:
        headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
    return headers


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            header: str = value.decode("latin-1")
            return header
    return None


def _check_declared_length(scope: Scope, limit: int) -> None:
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > limit):
            raise _too_large(limit)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes", limit=limit)


async def _send_error(send: Send, exc: ApiError, request_id: str) -> None:
    body = dumps(error_body(exc, request_id))
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
