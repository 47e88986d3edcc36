"""Property: for any data (NULLs, ties) and any sort (1-3 keys, mixed directions), walking a list
by next_cursor yields exactly the one-big-page order, the offset pages and Python's own order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import strategies as st

from tests.conftest import apply_schema
from tests.records.ordering import ids, python_sorted, walk
from tests.records.properties import for_all

SCHEMA = {
    "collections": {
        "items": {
            "fields": {
                "a": "integer",
                "b": "text",
                "c": "bool",
                "d": "date",
                "n": {"type": "number", "nullable": False, "default": 0},
                "t": "datetime",
                "s": {"type": "select", "values": ["lo", "mid", "hi"]},
            }
        }
    }
}
URL = "/api/collections/items/records"
SORTABLE = ["a", "b", "c", "d", "n", "t", "s", "created", "id"]
DATETIMES = frozenset({"created", "updated", "t"})


def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | values


ROWS = st.fixed_dictionaries(
    {
        "a": maybe(st.integers(-2, 2)),
        "b": maybe(st.sampled_from(["", "a", "ab", "b", "ba", "z"])),
        "c": maybe(st.booleans()),
        "d": maybe(st.sampled_from(["2026-01-01", "2026-01-02", "1999-12-31"])),
        "n": st.sampled_from([0, -1.5, 2.25, 1e10]),
        "t": maybe(st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"])),
        "s": maybe(st.sampled_from(["lo", "mid", "hi"])),
    }
)


@dataclass(frozen=True)
class Example:
    rows: list[dict[str, Any]]
    split: int  # rows before it share one created time, the rest another
    sort: str
    per_page: int


@st.composite
def examples(draw: st.DrawFn) -> Example:
    rows = draw(st.lists(ROWS, max_size=40))
    names = draw(st.lists(st.sampled_from(SORTABLE), min_size=1, max_size=3, unique=True))
    sort = ",".join(("-" if draw(st.booleans()) else "") + name for name in names)
    split = draw(st.integers(0, len(rows)))
    return Example(rows, split, sort, draw(st.integers(1, 8)))


@pytest.fixture(scope="module")
async def items(module_admin):
    await apply_schema(module_admin, SCHEMA)


async def insert(client: Any, rows: list[dict[str, Any]]) -> None:
    if rows:  # one batch is one transaction: every row gets the same `created`
        operations = [{"op": "create", "collection": "items", "body": row} for row in rows]
        response = await client.post("/api/batch", json={"operations": operations})
        assert response.status_code == 200, response.text


async def test_cursor_walks_match_sorted_lists(module_admin, module_app, items):
    async def check(example: Example) -> None:
        await module_app.ctx.db.execute("DELETE FROM public.items")
        await insert(module_admin, example.rows[: example.split])
        await insert(module_admin, example.rows[example.split :])
        everything = await module_admin.get(URL, params={"sort": example.sort, "per_page": 500})
        assert everything.status_code == 200, everything.text
        big = everything.json()["items"]
        assert len(big) == len(example.rows)
        assert ids(big) == ids(python_sorted(big, example.sort, DATETIMES))
        params = {"sort": example.sort, "per_page": example.per_page}
        assert ids(await walk(module_admin, URL, {**params, "skip_total": "true"})) == ids(big)
        assert ids(await walk(module_admin, URL, params)) == ids(big)
        offset: list[dict[str, Any]] = []
        for page in range(1, len(big) // example.per_page + 2):
            body = (await module_admin.get(URL, params={**params, "page": page})).json()
            assert body["total"] == len(big)
            offset += body["items"]
        assert ids(offset) == ids(big)

    await for_all(examples(), check, max_examples=25)
