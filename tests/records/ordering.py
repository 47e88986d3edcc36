"""The order a list should come back in, computed in Python, and walking a list by its cursor."""

from __future__ import annotations

from datetime import datetime
from functools import cmp_to_key
from typing import Any

import httpx

DATETIME_FIELDS = frozenset({"created", "updated"})


def _value(item: dict[str, Any], name: str, datetimes: frozenset[str]) -> Any:
    value = item[name]
    if name in datetimes and value is not None:
        return datetime.fromisoformat(value)
    return value


def _compare(a: Any, b: Any) -> int:
    if a == b:
        return 0
    if a is None:  # PostgreSQL: NULL sorts after every value ascending, before them descending
        return 1
    if b is None:
        return -1
    return -1 if a < b else 1


def python_sorted(
    items: list[dict[str, Any]], sort: str, datetimes: frozenset[str] = DATETIME_FIELDS
) -> list[dict[str, Any]]:
    """`items` in the order `sort` asks for, ties broken by id in the last key's direction."""
    keys = [(part.lstrip("-"), part.startswith("-")) for part in sort.split(",")]
    if all(name != "id" for name, _ in keys):
        keys.append(("id", keys[-1][1]))

    def compare(x: dict[str, Any], y: dict[str, Any]) -> int:
        for name, descending in keys:
            c = _compare(_value(x, name, datetimes), _value(y, name, datetimes))
            if c:
                return -c if descending else c
        return 0

    return sorted(items, key=cmp_to_key(compare))


async def walk(client: httpx.AsyncClient, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of a list, following next_cursor from the first page."""
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10_000):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        assert len(page["items"]) == page["per_page"]
    raise AssertionError("the cursor never ended")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]
