"""Reading requests: the app context, the caller's identity, the request id, the query string
(each parameter once) and JSON bodies (parsed with exact integers)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request

from baas.auth.identity import ANONYMOUS, Identity
from baas.auth.sessions import Client
from baas.context import AppContext
from baas.errors import MalformedJson, UnsupportedMediaType
from baas.http import list_params


def context(request: HTTPConnection) -> AppContext:
    return request.scope["state"]["ctx"]  # type: ignore[no-any-return]


def identity(request: Request) -> Identity:
    return request.scope.get("baas.identity", ANONYMOUS)  # type: ignore[no-any-return]


def query_params(request: HTTPConnection) -> Mapping[str, str]:
    """The query string's parameters, each given at most once: the one way handlers read them
    (a parameter given twice is a 400 `repeated_parameter`, never a silent choice)."""
    return list_params.single_valued(request.query_params.multi_items())


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
    return parse_json(body)


# orjson reads an integer outside [-2**63, 2**64 - 1] as a float, silently (-9223372036854775809
# becomes -9223372036854775808.0), and refuses a number past a double's range as if the body
# were not JSON. Such bodies are read again, exactly, so that the field the number is for can
# refuse it by name. An integer orjson would round has at least 19 digits in a row.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def parse_json(body: bytes, what: str = "the body") -> Any:
    """A JSON document as Python values, every number exactly as written (an integer as an int
    of any size, a number past a double's range as infinity), so that a value out of a field's
    range is refused by the field, never rounded; MalformedJson (with position) if not JSON.
    `what` names the document in that error (a request body, a multipart form's JSON part)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "infinity" in exc.msg:
            return _exact(body, what)
        raise MalformedJson(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            line=exc.lineno,
            column=exc.colno,
        ) from None
    if _LONG_DIGITS.search(body):
        return _exact(body, what)
    return value  # the common case: orjson's numbers are exact


def _exact(body: bytes, what: str) -> Any:
    try:
        value = json.loads(body, parse_constant=_not_json)
        _check_text(value)
    except (ValueError, RecursionError) as exc:  # also past Python's 4300-digit integers
        raise MalformedJson(f"{what} is not valid JSON: {_reason(exc)}") from None
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def _check_text(value: Any) -> None:
    """Strings and keys must be UTF-8 (no lone surrogates), as orjson itself demands."""
    if isinstance(value, str):
        value.encode()
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode()
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "it nests too deep"
    if isinstance(exc, UnicodeError):
        return "it is not UTF-8 text"
    return str(exc).split(":")[0][:120]
