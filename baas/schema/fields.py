"""Field types: which options each type takes, its column type, its CHECK and how values parse.

One table (`TYPES`) describes every type; definitions are validated against it when a schema is
loaded, and record values are parsed with `parse_value` before any SQL is built, so a bad value is
a per-field 400, never a database error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from baas.schema.emails import InvalidEmail, email_address
from baas.schema.models import Field

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
EXACT_FLOAT_INT = 2**53  # past it a float (1e18, 5.0e17) may not be the integer that was meant
MAX_JSON_DEPTH = 64  # arrays and objects inside one another, the outermost counted
_INTEGER_RANGE = f"between {BIGINT_MIN} and {BIGINT_MAX}"

COMMON_OPTIONS = frozenset(
    {"type", "required", "nullable", "default", "unique", "hidden", "renamed_from", "id"}
)


@dataclass(frozen=True)
class TypeSpec:
    name: str
    column: str  # PostgreSQL type of a single value
    options: frozenset[str]
    can_default: bool = True
    can_unique: bool = True
    length_bounds: bool = False  # min/max bound the length (text) rather than the value


def _opts(*names: str) -> frozenset[str]:
    return COMMON_OPTIONS | frozenset(names)


TYPES: dict[str, TypeSpec] = {
    "text": TypeSpec("text", "text", _opts("min", "max", "pattern"), length_bounds=True),
    "email": TypeSpec("email", "text", _opts("min", "max", "pattern"), length_bounds=True),
    "url": TypeSpec("url", "text", _opts("min", "max", "pattern"), length_bounds=True),
    "integer": TypeSpec("integer", "bigint", _opts("min", "max")),
    "number": TypeSpec("number", "double precision", _opts("min", "max")),
    "bool": TypeSpec("bool", "boolean", _opts()),
    "datetime": TypeSpec("datetime", "timestamptz", _opts()),
    "date": TypeSpec("date", "date", _opts()),
    "json": TypeSpec("json", "jsonb", _opts(), can_unique=False),
    "select": TypeSpec("select", "text", _opts("values", "multiple", "min", "max")),
    "relation": TypeSpec(
        "relation",
        "uuid",
        _opts("collection", "multiple", "on_delete", "min", "max"),
        can_default=False,
    ),
    "file": TypeSpec(
        "file",
        "text",
        _opts("multiple", "max_size", "mime_types", "protected", "serve_inline", "thumbs", "max"),
        can_default=False,
        can_unique=False,
    ),
}


def column_type(f: Field) -> str:
    """The PostgreSQL column type for a field (arrays for multi-valued fields)."""
    base = TYPES[f.type].column
    return f"{base}[]" if f.multiple else base


def counts_items(f: Field) -> bool:
    """True when min/max bound the number of items (multi-valued fields)."""
    return f.multiple


class FieldValueError(ValueError):
    """A value a field does not accept: a stable code and a message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_CONTROL = re.compile(r"[\x00-\x1f\x7f\s]")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)


def parse_uuid(value: Any) -> str:
    """Canonical lowercase text of a UUID, or FieldValueError."""
    if isinstance(value, str) and len(value) == 36 and _CANONICAL_UUID.fullmatch(value):
        return value  # the common case, already canonical
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise FieldValueError(
            "invalid_id", "must be a UUID such as 0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b"
        )
    return str(UUID(value))


def parse_value(f: Field, value: Any) -> Any:
    """Parse one non-null JSON value for field `f` into what asyncpg binds for its column."""
    if f.multiple:
        if not isinstance(value, list):
            raise FieldValueError("invalid_type", "must be a list")
        items = [_parse_scalar(f, item) for item in value]
        if len(set(items)) != len(items):
            raise FieldValueError("duplicate_value", "must not list the same value twice")
        if f.required and not items:
            raise FieldValueError("required", "must not be empty")
        _check_bounds(f, len(items), "items")
        return items
    return _parse_scalar(f, value)


def _parse_scalar(f: Field, value: Any) -> Any:
    parser = _PARSERS[f.type]
    return parser(f, value)


def _text(f: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldValueError("invalid_type", "must be a string")
    if "\x00" in value:
        raise FieldValueError("invalid_value", "must not contain NUL characters")
    if f.required and value == "":
        raise FieldValueError("required", "must not be empty")
    _check_bounds(f, len(value), "characters")
    if f.pattern is not None and not re.fullmatch(f.pattern, value):
        raise FieldValueError("pattern_mismatch", f"must match the pattern {f.pattern}")
    return value


def _email(f: Field, value: Any) -> str:
    """An address as sent (an optional field may hold "", like any text field)."""
    text = _text(f, value)
    if text:
        try:
            email_address(text)
        except InvalidEmail as exc:
            raise FieldValueError("invalid_email", str(exc)) from None
    return text


def _url(f: Field, value: Any) -> str:
    text = _text(f, value)
    if text:
        parts = urlsplit(text) if not _CONTROL.search(text) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise FieldValueError("invalid_url", "must be an http(s) URL")
    return text


def _integer(f: Field, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldValueError("invalid_type", "must be an integer")
    if isinstance(value, float):
        if math.isfinite(value) and not value.is_integer():
            raise FieldValueError("invalid_type", "must be an integer")
        if not abs(value) <= EXACT_FLOAT_INT:  # 9.3e18 or 1e19: which integer? never guess
            raise FieldValueError(
                "out_of_range",
                f"must be an integer {_INTEGER_RANGE}, written without a fraction or exponent "
                f"past {EXACT_FLOAT_INT}",
            )
    number = int(value)
    if not BIGINT_MIN <= number <= BIGINT_MAX:
        raise FieldValueError("out_of_range", f"must be an integer {_INTEGER_RANGE} (64 bits)")
    _check_bounds(f, number, "")
    return number


def _number(f: Field, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldValueError("invalid_type", "must be a number")
    try:
        number = float(value)
    except OverflowError:  # an integer past what a double holds (about 1.8e308)
        number = math.inf
    if not math.isfinite(number):
        raise FieldValueError(
            "out_of_range", "must be a finite number, at most about 1.8e308 either way"
        )
    _check_bounds(f, number, "")
    return number


def _bool(f: Field, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldValueError("invalid_type", "must be true or false")
    return value


_DATETIME_MIN = datetime.min.replace(tzinfo=UTC)
_DATETIME_MAX = datetime.max.replace(tzinfo=UTC)


def _datetime(f: Field, value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise FieldValueError("invalid_type", "must be an ISO 8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise FieldValueError(
            "invalid_datetime", "must be an ISO 8601 date-time such as 2026-01-31T12:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        parsed = _DATETIME_MIN
    if not _DATETIME_MIN < parsed < _DATETIME_MAX:  # the driver stores these two as -/+infinity
        raise FieldValueError(
            "out_of_range", "must be after 0001-01-01T00:00:00Z and before 9999-12-31T23:59:59Z"
        )
    return parsed


def _date(f: Field, value: Any) -> date:
    if not isinstance(value, str) or len(value) > 10:
        raise FieldValueError("invalid_type", "must be a date string such as 2026-01-31")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FieldValueError("invalid_date", "must be a date such as 2026-01-31") from None


def _json(f: Field, value: Any) -> Any:
    _check_json(value, 0)
    return value


def _check_json(value: Any, depth: int) -> None:
    """`depth`: how many arrays and objects hold `value`."""
    if isinstance(value, str):
        if "\x00" in value:
            raise FieldValueError("invalid_value", "must not contain NUL characters")
    elif isinstance(value, (dict, list)):
        if depth >= MAX_JSON_DEPTH:
            raise FieldValueError(
                "too_deep", f"must not nest arrays and objects more than {MAX_JSON_DEPTH} deep"
            )
        items = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict) and any("\x00" in key for key in value):
            raise FieldValueError("invalid_value", "must not contain NUL characters")
        for item in items:
            _check_json(item, depth + 1)
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if not BIGINT_MIN <= value <= BIGINT_MAX:  # stored and read back exactly within 64 bits
            raise FieldValueError(
                "out_of_range", f"must hold integers {_INTEGER_RANGE}; send larger ones as strings"
            )
    elif isinstance(value, float) and not math.isfinite(value):
        raise FieldValueError("out_of_range", "must hold finite numbers")


def _select(f: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldValueError("invalid_type", "must be a string")
    if value not in f.values:
        raise FieldValueError("invalid_choice", "must be one of: " + ", ".join(f.values))
    return value


def _relation(f: Field, value: Any) -> str:
    try:
        return parse_uuid(value)
    except FieldValueError:
        raise FieldValueError("invalid_id", "must be the id (a UUID) of a record") from None


def _file(f: Field, value: Any) -> str:
    raise FieldValueError("read_only", "files are uploaded with multipart/form-data")


_PARSERS = {
    "text": _text,
    "email": _email,
    "url": _url,
    "integer": _integer,
    "number": _number,
    "bool": _bool,
    "datetime": _datetime,
    "date": _date,
    "json": _json,
    "select": _select,
    "relation": _relation,
    "file": _file,
}


_BOUND_CODES = {
    "characters": ("too_short", "too_long"),
    "items": ("too_few", "too_many"),
    "": ("too_small", "too_large"),
}


def _check_bounds(f: Field, size: float, unit: str) -> None:
    low, high = _BOUND_CODES[unit]
    suffix = f" {unit}" if unit else ""
    if f.min is not None and size < f.min:
        raise FieldValueError(low, f"must be at least {_num(f.min)}{suffix}")
    if f.max is not None and size > f.max:
        raise FieldValueError(high, f"must be at most {_num(f.max)}{suffix}")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
