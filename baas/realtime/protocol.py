"""The realtime wire protocol: client messages parsed into typed values, errors and close codes.

Every frame is one JSON object with a `type`. Parsing checks shapes and sizes only; what a
message asks for (a collection, a filter, a channel) is judged by the service that handles it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from baas.http.responses import dumps

CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_SLOW = 4008
CLOSE_RATE = 4029
CLOSE_TOO_MANY = 4030
CLOSE_IDLE = 4408

MAX_NAME = 64  # subscription ids, refs, event names
MAX_TOKEN = 4096
MAX_OPTION = 4096  # filter, expand, fields (the filter's own limits apply after this)
MAX_PRESENCE_BYTES = 1024
MAX_PAYLOAD_BYTES = 4096
MAX_CHANNEL = 120


class ProtocolError(Exception):
    """A refused message: answered with an `error` message, nothing changed."""

    def __init__(self, code: str, message: str, *, sub: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.sub = sub
        self.extra = extra
        self.ref: str | None = None  # the refused message's `ref`, echoed back

    def render(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.sub is not None:
            body["id"] = self.sub
        if self.ref is not None:
            body["ref"] = self.ref
        body.update(self.extra)
        return body


def invalid(message: str) -> ProtocolError:
    return ProtocolError("invalid_message", message)


@dataclass(frozen=True)
class Auth:
    token: str


@dataclass(frozen=True)
class Subscribe:
    id: str
    collection: str
    record: str | None = None
    filter: str | None = None
    expand: str | None = None
    fields: str | None = None
    since: int | None = None


@dataclass(frozen=True)
class Unsubscribe:
    id: str


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class Pong:
    pass


@dataclass(frozen=True)
class Join:
    channel: str
    presence: Any = None


@dataclass(frozen=True)
class Leave:
    channel: str


@dataclass(frozen=True)
class Broadcast:
    channel: str
    event: str
    payload: Any = None


Message = Auth | Subscribe | Unsubscribe | Ping | Pong | Join | Leave | Broadcast


def parse(text: str) -> tuple[Message, str | None]:
    """A client frame -> (message, ref); ProtocolError when it is not a valid message."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise invalid("a message is one JSON object") from None
    if not isinstance(data, dict):
        raise invalid("a message is one JSON object")
    ref = _text(data, "ref", MAX_NAME, required=False)
    kind = data.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ProtocolError(
            "invalid_message", f"unknown message type; one of: {', '.join(_PARSERS)}"
        )
    try:
        return parser(data), ref
    except ProtocolError as exc:
        exc.ref = ref
        raise


def _text(data: dict[str, Any], key: str, limit: int, required: bool = True) -> Any:
    value = data.get(key)
    if value is None:
        if required:
            raise invalid(f"{data.get('type')}: {key!r} is required")
        return None
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise invalid(f"{key!r} must be a string of 1-{limit} characters")
    return value


def _json_within(value: Any, limit: int, what: str) -> Any:
    if value is not None and len(orjson.dumps(value)) > limit:
        raise ProtocolError("too_large", f"{what} is larger than {limit} bytes of JSON")
    return value


def _subscribe(data: dict[str, Any]) -> Subscribe:
    since = data.get("since")
    if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
        raise invalid("'since' must be a change id (an integer >= 0)")
    return Subscribe(
        id=_text(data, "id", MAX_NAME),
        collection=_text(data, "collection", MAX_NAME),
        record=_text(data, "record", MAX_NAME, required=False),
        filter=_text(data, "filter", MAX_OPTION, required=False),
        expand=_text(data, "expand", MAX_OPTION, required=False),
        fields=_text(data, "fields", MAX_OPTION, required=False),
        since=since,
    )


def _join(data: dict[str, Any]) -> Join:
    presence = _json_within(data.get("presence"), MAX_PRESENCE_BYTES, "presence")
    if presence is not None and not isinstance(presence, dict):
        raise invalid("'presence' must be a JSON object")
    return Join(_text(data, "channel", MAX_CHANNEL), presence or {})


def _broadcast(data: dict[str, Any]) -> Broadcast:
    payload = _json_within(data.get("payload"), MAX_PAYLOAD_BYTES, "payload")
    return Broadcast(_text(data, "channel", MAX_CHANNEL), _text(data, "event", MAX_NAME), payload)


_PARSERS: dict[str, Any] = {
    "auth": lambda d: Auth(_text(d, "token", MAX_TOKEN)),
    "subscribe": _subscribe,
    "unsubscribe": lambda d: Unsubscribe(_text(d, "id", MAX_NAME)),
    "ping": lambda d: Ping(),
    "pong": lambda d: Pong(),
    "join": _join,
    "leave": lambda d: Leave(_text(d, "channel", MAX_CHANNEL)),
    "broadcast": _broadcast,
}


def render(message: dict[str, Any]) -> str:
    """A server message as frame text (datetimes in UTC with Z, as REST renders them)."""
    return dumps(message).decode()
