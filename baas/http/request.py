"""Reading requests: the app context, the caller's identity, the request id and JSON bodies."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request

from baas.auth.identity import ANONYMOUS, Identity
from baas.auth.sessions import Client
from baas.context import AppContext
from baas.errors import MalformedJson, UnsupportedMediaType


def context(request: HTTPConnection) -> AppContext:
    return request.scope["state"]["ctx"]  # type: ignore[no-any-return]


def identity(request: Request) -> Identity:
    return request.scope.get("baas.identity", ANONYMOUS)  # type: ignore[no-any-return]


def request_id(request: Request) -> str | None:
    return request.scope.get("baas.request_id")


def client(request: HTTPConnection) -> Client:
    """The caller's address (X-Forwarded-For honoured only from a trusted proxy) and agent."""
    peer = request.client.host if request.client else None
    trusted = context(request).settings.trusted_proxies
    ip = peer
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and peer in trusted:
        # The rightmost address not itself a trusted proxy is the client.
        for hop in reversed([h.strip() for h in forwarded.split(",")]):
            if hop and hop not in trusted:
                ip = hop[:64]
                break
    return Client(ip=ip, user_agent=request.headers.get("user-agent"))


async def read_json(request: Request) -> Any:
    """The parsed JSON body; 415 for another content type, 400 (with position) if malformed."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"send JSON (Content-Type: application/json), not {media}")
    body = await request.body()
    if not body:
        raise MalformedJson("the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            line=exc.lineno,
            column=exc.colno,
        ) from None
