"""Conditional and range requests (RFC 9110): If-None-Match, If-Modified-Since, Range, If-Range."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from starlette.datastructures import Headers


def http_date(when: datetime) -> str:
    return format_datetime(when.replace(microsecond=0), usegmt=True)


def not_modified(headers: Headers, etag: str, modified: datetime) -> bool:
    """Whether the client's copy is current (a 304 answers)."""
    match = headers.get("if-none-match")
    if match is not None:
        tags = [t.strip().removeprefix("W/") for t in match.split(",")]
        return "*" in tags or etag in tags
    since = _date(headers.get("if-modified-since"))
    return since is not None and modified.replace(microsecond=0) <= since


def byte_range(
    headers: Headers, size: int, etag: str, modified: datetime
) -> tuple[int, int] | bool | None:
    """The one range asked for as (start, end inclusive); None for the whole file (no Range, a
    stale If-Range, several ranges, or a header this does not understand); False when the range
    cannot be satisfied (416)."""
    spec = headers.get("range")
    if spec is None or not spec.startswith("bytes=") or "," in spec:
        return None
    if_range = headers.get("if-range")
    if (
        if_range is not None
        and if_range != etag
        and _date(if_range) != modified.replace(microsecond=0)
    ):
        return None
    first, dash, last = spec[6:].strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:  # the last N bytes
        n = int(last)
        return (max(size - n, 0), size - 1) if n and size else False
    start = int(first)
    end = int(last) if last.isdigit() else size - 1
    if start >= size or end < start:
        return False
    return start, min(end, size - 1)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
