"""A push message as data: what it says (`Notification`) and whom it is for (`Target`), parsed
from a send request with every problem reported at once, each limit named.

A notification may carry texts per locale; a device gets the texts of its locale, else of its
language ("pt" for "pt_BR"), else the default ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson

from baas.errors import ValidationFailed, field_error
from baas.schema.ids import record_id

MAX_TEXT = 1000
MAX_COLLAPSE_KEY_BYTES = 64  # APNs' limit for apns-collapse-id
MAX_DATA_BYTES = 3000  # APNs and FCM both stop at 4 KB for the whole payload
MAX_LOCALES = 50
MAX_IDS = 10_000
MAX_TOPICS = 100
MAX_TTL_S = 28 * 86_400  # FCM's longest
MAX_SCHEDULE_AHEAD = timedelta(days=365)
TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~%")
_KEYS = (
    "title",
    "body",
    "data",
    "badge",
    "sound",
    "image",
    "thread",
    "collapse_key",
    "priority",
    "ttl",
    "locales",
)


@dataclass(frozen=True)
class Notification:
    title: str = ""
    body: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    badge: int | None = None
    sound: str | None = None
    image: str | None = None
    thread: str | None = None
    collapse_key: str | None = None
    priority: str = "high"  # high | normal
    ttl: int | None = None  # seconds the provider may keep it for an offline device
    locales: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def for_locale(self, locale: str | None) -> Notification:
        """The texts for a device's locale ("fr_CA": "fr_CA", then "fr", then the default)."""
        if not locale or not self.locales:
            return self
        norm = locale.replace("-", "_")
        texts = self.locales.get(norm) or self.locales.get(norm.split("_", 1)[0])
        if not texts:
            return self
        return replace(
            self, title=texts.get("title", self.title), body=texts.get("body", self.body)
        )

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in _KEYS}
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in out.items()}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Notification:
        return cls(**{k: doc[k] for k in _KEYS if k in doc})


@dataclass(frozen=True)
class Target:
    users: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    filter: str | None = None  # over the users collection

    def to_json(self) -> dict[str, Any]:
        return {
            "users": list(self.users),
            "devices": list(self.devices),
            "topics": list(self.topics),
            "filter": self.filter,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Target:
        return cls(
            tuple(doc.get("users") or ()),
            tuple(doc.get("devices") or ()),
            tuple(doc.get("topics") or ()),
            doc.get("filter"),
        )


@dataclass(frozen=True)
class SendRequest:
    target: Target
    notification: Notification
    send_at: datetime | None


class _Problems:
    def __init__(self) -> None:
        self.fields: dict[str, dict[str, str]] = {}

    def add(self, path: str, message: str, code: str = "invalid_value") -> None:
        self.fields.setdefault(path, field_error(code, message))


def parse_send(body: Any, now: datetime | None = None) -> SendRequest:
    """A send request body, or ValidationFailed naming every problem."""
    problems = _Problems()
    if not isinstance(body, dict):
        raise ValidationFailed({"body": field_error("invalid_body", "send a JSON object")})
    known = {"users", "devices", "topics", "filter", "send_at", *_KEYS}
    for key in body:
        if key not in known:
            problems.add(
                str(key)[:100],
                f"a push message has no {str(key)[:100]!r}: see the README's Push section",
                "unknown_field",
            )
    target = _target(body, problems)
    note = parse_notification(body, problems)
    send_at = _send_at(body.get("send_at"), now or datetime.now(UTC), problems)
    if problems.fields:
        raise ValidationFailed(problems.fields)
    return SendRequest(target, note, send_at)


def _target(body: Mapping[str, Any], problems: _Problems) -> Target:
    users = _ids(body.get("users"), "users", problems)
    devices = _ids(body.get("devices"), "devices", problems)
    topics = _topics(body.get("topics"), problems)
    text = body.get("filter")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        problems.add("filter", "the filter is empty: send one over users, e.g. \"team = 'red'\"")
        text = None
    if not (users or devices or topics or text):
        problems.add(
            "users",
            "no recipients: send users, devices, topics or filter (one at least)",
            "required",
        )
    return Target(users, devices, topics, text)


def _ids(value: Any, name: str, problems: _Problems) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_IDS:
        problems.add(name, f"must be a list of at most {MAX_IDS} ids", "too_many")
        return ()
    ids = [record_id(v) if isinstance(v, str) else None for v in value]
    if None in ids:
        bad = next(v for v, i in zip(value, ids, strict=True) if i is None)
        problems.add(name, f"{str(bad)[:60]!r} is not an id", "invalid_id")
        return ()
    return tuple(dict.fromkeys(i for i in ids if i))


def _topics(value: Any, problems: _Problems) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TOPICS:
        problems.add("topics", f"must be a list of at most {MAX_TOPICS} topic names", "too_many")
        return ()
    if not all(isinstance(t, str) and valid_topic(t) for t in value):
        bad = next(t for t in value if not (isinstance(t, str) and valid_topic(t)))
        problems.add(
            "topics", f"{str(bad)[:60]!r} is not a topic name: 1-200 of A-Z a-z 0-9 - _ . ~ %"
        )
        return ()
    return tuple(dict.fromkeys(value))


def valid_topic(name: str) -> bool:
    return 0 < len(name) <= 200 and set(name) <= TOPIC_CHARS


def parse_notification(body: Mapping[str, Any], problems: _Problems) -> Notification:
    values: dict[str, Any] = {}
    for key in ("title", "body", "sound", "thread", "collapse_key"):
        text = body.get(key)
        if text is None:
            continue
        if not isinstance(text, str) or len(text) > MAX_TEXT or "\x00" in text:
            problems.add(key, *_text_problem(text))
        else:
            values[key] = text
    if len(values.get("collapse_key", "").encode()) > MAX_COLLAPSE_KEY_BYTES:
        size = len(values["collapse_key"].encode())
        problems.add("collapse_key", f"is {size} bytes: APNs takes at most 64", "too_long")
    _numbers(body, values, problems)
    _extras(body, values, problems)
    if not (values.get("title") or values.get("body") or values.get("data")):
        problems.add("title", "the notification is empty: send a title, a body or data", "required")
    return Notification(**values)


def _numbers(body: Mapping[str, Any], values: dict[str, Any], problems: _Problems) -> None:
    badge, ttl = body.get("badge"), body.get("ttl")
    if badge is not None:
        if isinstance(badge, bool) or not isinstance(badge, int) or not 0 <= badge <= 99_999:
            problems.add("badge", f"{str(badge)[:20]} is not a badge: 0 to 99999", "out_of_range")
        else:
            values["badge"] = badge
    if ttl is not None:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL_S:
            problems.add(
                "ttl", f"{str(ttl)[:20]} is not a ttl: 0 to {MAX_TTL_S} seconds", "out_of_range"
            )
        else:
            values["ttl"] = ttl
    priority = body.get("priority", "high")
    if priority not in ("high", "normal"):
        problems.add(
            "priority",
            f"{str(priority)[:20]!r} is not a priority: high or normal",
            "invalid_choice",
        )
    else:
        values["priority"] = priority


def _extras(body: Mapping[str, Any], values: dict[str, Any], problems: _Problems) -> None:
    image = body.get("image")
    if image is not None:
        if not _https_url(image):
            problems.add("image", "not an https URL (the device fetches it)", "invalid_url")
        else:
            values["image"] = image
    data = body.get("data")
    if data is not None:
        if not isinstance(data, dict) or "aps" in data:
            problems.add("data", _data_problem(data))
        elif (size := _json_size(data)) is None:
            problems.add("data", "nested too deeply to send", "too_deep")
        elif size > MAX_DATA_BYTES:
            problems.add("data", f"is {size} bytes as JSON: at most {MAX_DATA_BYTES}", "too_large")
        else:
            values["data"] = data
    locales = body.get("locales")
    if locales is not None:
        values["locales"] = _locales(locales, problems)


def _text_problem(text: Any) -> tuple[str, str]:
    """(message, code)."""
    if not isinstance(text, str):
        return f"must be text, not {type(text).__name__}", "invalid_type"
    if "\x00" in text:
        return "contains a NUL character", "invalid_value"
    return f"is {len(text)} characters: at most {MAX_TEXT}", "too_long"


def _data_problem(data: Any) -> str:
    if not isinstance(data, dict):
        return f"must be an object of your own keys, not {type(data).__name__}"
    return "'aps' is APNs' own key: name your data otherwise"


def _https_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 2000:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # a malformed IPv6 host ("https://[x")
        return False
    return parts.scheme == "https" and bool(parts.netloc)


def _json_size(value: Any) -> int | None:
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # nested deeper than orjson writes
        return None


def _locales(value: Any, problems: _Problems) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict) or len(value) > MAX_LOCALES:
        problems.add(
            "locales",
            f'must be at most {MAX_LOCALES} of "fr": {{"title": ..., "body": ...}}',
            "invalid_type" if not isinstance(value, dict) else "too_many",
        )
        return {}
    out = {}
    for locale, texts in value.items():
        ok = isinstance(texts, dict) and set(texts) <= {"title", "body"}
        ok = ok and all(isinstance(t, str) and len(t) <= MAX_TEXT for t in texts.values())
        if not ok or not 2 <= len(locale) <= 20:
            problems.add(
                f"locales.{str(locale)[:20]}",
                f'not texts: send {{"title": ..., "body": ...}} of at most {MAX_TEXT} characters',
            )
            continue
        out[locale.replace("-", "_")] = dict(texts)
    return out


def _send_at(value: Any, now: datetime, problems: _Problems) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        problems.add(
            "send_at",
            f"{str(value)[:40]!r} is not a time with its offset: e.g. 2026-12-01T09:00:00Z",
            "invalid_datetime",
        )
        return None
    if when > now + MAX_SCHEDULE_AHEAD:
        problems.add("send_at", "is more than a year ahead", "out_of_range")
    return when
