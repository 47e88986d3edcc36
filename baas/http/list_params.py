"""Query-string parsing: bounded integers, booleans, sort specs, unknown keys.

Generic: no knowledge of collections. Each bad value is a 400 naming it (`invalid_parameter`,
or `invalid_boolean` for a boolean that is not exactly `true` or `false`). Every boolean query
parameter of the API is read by `boolean`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from baas.errors import InvalidParameter

MAX_PARAM_LENGTH = 4096


def reject_unknown(query: Mapping[str, str], allowed: Iterable[str]) -> None:
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        raise InvalidParameter(
            f"unknown query parameter(s): {', '.join(repr(u[:40]) for u in unknown[:10])}",
            parameter=unknown[0][:40],
        )


_INTEGER = re.compile(r"[+-]?[0-9]{1,12}")


def bounded_int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer from `low` to `high`; a 400 naming the parameter, what was sent and the range
    (a negative page is told it must be 1 or more, not that it is no whole number)."""
    raw = query.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        raise InvalidParameter(
            f"{name} must be a whole number from {low} to {high}, not {raw[:40]!r}",
            parameter=name,
        )
    value = int(raw)
    if value < low:
        raise InvalidParameter(f"{name} must be {low} or more, not {value}", parameter=name)
    if value > high:
        raise InvalidParameter(f"{name} must be at most {high}, not {value}", parameter=name)
    return value


def boolean(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    """A boolean query parameter: exactly `true` or `false` (absent: `default`). Anything else
    (`1`, `True`, `yes`, empty) is a 400 `invalid_boolean`, never a guess: `?keep_current=1`
    read as false would end the caller's own session."""
    raw = query.get(name)
    if raw is None:
        return default
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise InvalidParameter(
        f"{name} must be true or false, not {raw[:40]!r}",
        code="invalid_boolean",
        parameter=name,
        value=raw[:40],
    )


def text(query: Mapping[str, str], name: str, limit: int = MAX_PARAM_LENGTH) -> str | None:
    raw = query.get(name)
    if raw is not None and len(raw) > limit:
        raise InvalidParameter(f"{name} is longer than {limit} characters", parameter=name)
    return raw


def sort_spec(query: Mapping[str, str], name: str = "sort") -> tuple[tuple[str, bool], ...]:
    """`sort=-created,title` -> (("created", True), ("title", False))."""
    raw = text(query, name)
    if not raw:
        return ()
    out = []
    for part in raw.split(","):
        part = part.strip()
        descending = part.startswith("-")
        field = part.lstrip("+-")
        if not field:
            raise InvalidParameter(f"{name} has an empty field name", parameter=name)
        out.append((field, descending))
    return tuple(out)
