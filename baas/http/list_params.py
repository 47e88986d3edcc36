"""Query-string parsing: parameters given once, bounded integers, booleans, sort specs, unknown
keys.

Generic: no knowledge of collections. Each bad value is a 400 naming it (`invalid_parameter`,
`invalid_boolean` for a boolean that is not exactly `true` or `false`, `repeated_parameter` for a
parameter given twice). Every boolean query parameter of the API is read by `boolean`; every
query string is read through `single_valued` (by `query_params` in baas/http/request.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from baas.errors import InvalidParameter

MAX_PARAM_LENGTH = 4096


# What to send instead of a parameter given twice, for the ones a client may try to repeat.
_ONCE_HINTS = {
    "filter": "join the conditions with AND in one filter",
    "sort": "list the fields in one sort, separated by commas",
    "expand": "list the relations in one expand, separated by commas",
    "fields": "list the fields in one fields, separated by commas",
}


def single_valued(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The query string's (name, value) pairs as a mapping; a 400 `repeated_parameter` naming a
    parameter given more than once (no parameter takes several values, and picking one of two
    would answer a question the client did not ask)."""
    out: dict[str, str] = {}
    for name, value in items:
        if name in out:
            hint = _ONCE_HINTS.get(name, "keep the value you mean")
            raise InvalidParameter(
                f"the query parameter {name[:40]!r} is given more than once: send it once ({hint})",
                code="repeated_parameter",
                parameter=name[:40],
            )
        out[name] = value
    return out


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
