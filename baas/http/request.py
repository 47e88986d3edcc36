"""Reading requests: the app context, the caller's identity, the request id and JSON bodies."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from baas.auth.identity import ANONYMOUS, Identity
from baas.context import AppContext
from baas.errors import MalformedJson, UnsupportedMediaType


def context(request: Request) -> AppContext:
    return request.scope["state"]["ctx"]  # type: ignore[no-any-return]


def identity(request: Request) -> Identity:
    return request.scope.get("baas.identity", ANONYMOUS)  # type: ignore[no-any-return]


def request_id(request: Request) -> str | None:
    return request.scope.get("baas.request_id")


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
