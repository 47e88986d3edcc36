"""Lists: pages, bounds, sorts, totals and keyset cursors over one seeded collection."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from tests.conftest import apply_schema
from tests.records.ordering import ids, python_sorted, walk
from tests.records.scenarios import Case, cases, error, run

SCHEMA = {
    "collections": {
        "posts": {
            "fields": {
                "title": {"type": "text", "required": True},
                "views": "integer",
                "score": {"type": "number", "nullable": False, "default": 0},
                "tags": {"type": "select", "values": ["a", "b"], "multiple": True},
                "meta": "json",
                "image": "file",
                "secret": {"type": "text", "hidden": True},
            }
        }
    }
}
URL = "/api/collections/posts/records"
COUNT = 75


def seed_body(i: int) -> dict[str, Any]:
    # views: 0-4 with ties and a null every 7th; titles repeat so ties need the next key.
    return {
        "title": f"t{i % 10:02d}",
        "views": None if i % 7 == 0 else i % 5,
        "score": (i * 37) % 11 / 2,
    }


@pytest.fixture(scope="module")
async def records(module_admin) -> list[dict[str, Any]]:
    await apply_schema(module_admin, SCHEMA)
    out = []
    for i in range(COUNT):
        response = await module_admin.post(URL, json={**seed_body(i), "secret": "s"})
        assert response.status_code == 201
        out.append(response.json())
    return out


def tamper(cursor: str) -> str:
    names, values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return encode([names, values[:-1]])


def encode(payload: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()


async def test_default_page(module_admin, records):
    response = await module_admin.get(URL)
    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"items", "page", "per_page", "total", "next_cursor"}
    assert (page["page"], page["per_page"], page["total"]) == (1, 30, COUNT)
    assert ids(page["items"]) == ids(python_sorted(records, "-created"))[:30]
    assert page["next_cursor"] is not None
    assert all("secret" not in item for item in page["items"])
    assert page["items"][0] == records[-1]  # newest first, exactly as created


async def test_offset_pages_cover_everything_once(module_admin, records):
    expected = ids(python_sorted(records, "-created"))
    got: list[str] = []
    for page in (1, 2, 3, 4):
        response = await module_admin.get(URL, params={"page": page})
        body = response.json()
        assert (body["page"], body["total"]) == (page, COUNT)
        assert (body["next_cursor"] is not None) == (page < 3)
        got += ids(body["items"])
    assert got == expected


@pytest.mark.parametrize(
    ("per_page", "has_more"), [(COUNT - 1, True), (COUNT, False), (COUNT + 1, False), (500, False)]
)
async def test_next_cursor_is_present_iff_more_rows(module_admin, records, per_page, has_more):
    body = (await module_admin.get(URL, params={"per_page": per_page})).json()
    assert len(body["items"]) == min(per_page, COUNT)
    assert (body["next_cursor"] is not None) is has_more


async def test_skip_total(module_admin, records):
    body = (await module_admin.get(URL, params={"skip_total": "true", "per_page": 5})).json()
    assert body["total"] is None
    assert len(body["items"]) == 5 and body["next_cursor"] is not None
    body = (await module_admin.get(URL, params={"skip_total": "false", "per_page": 5})).json()
    assert body["total"] == COUNT
    past_the_end = await module_admin.get(URL, params={"skip_total": "true", "page": 99})
    assert past_the_end.json()["items"] == [] and past_the_end.json()["total"] is None
    with_total = await module_admin.get(URL, params={"page": 99})
    assert with_total.json()["items"] == [] and with_total.json()["total"] == COUNT


@pytest.mark.parametrize(
    "sort",
    [
        "-views,title",
        "views,-title",
        "title,views,score",
        "-score,-views",
        "score,created",
        "views,id",
        "-id",
        "-updated",
        "title",
        " title , -views ",
        "+title",
    ],
)
async def test_sorts_and_cursor_walks_agree(module_admin, records, sort):
    expected = ids(python_sorted(records, sort.replace(" ", "").replace("+", "")))
    one_page = (await module_admin.get(URL, params={"sort": sort, "per_page": 500})).json()
    assert ids(one_page["items"]) == expected
    walked = await walk(module_admin, URL, {"sort": sort, "per_page": 7, "skip_total": "true"})
    assert ids(walked) == expected  # every record exactly once, in order


async def test_a_cursor_after_an_offset_page_continues_from_there(module_admin, records):
    expected = ids(python_sorted(records, "views"))
    second = (
        await module_admin.get(URL, params={"sort": "views", "page": 2, "per_page": 10})
    ).json()
    assert ids(second["items"]) == expected[10:20]
    following = await module_admin.get(
        URL, params={"sort": "views", "per_page": 10, "cursor": second["next_cursor"]}
    )
    assert ids(following.json()["items"]) == expected[20:30]
    assert following.json()["total"] == COUNT


async def test_cursors_are_checked(module_admin, records):
    first = (await module_admin.get(URL, params={"sort": "-views,title", "per_page": 5})).json()
    cursor = first["next_cursor"]
    names, values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert names == ["-views", "title", "id"]
    refused = {
        "garbage": "not a cursor!",
        "not json": encode("x")[:-2],
        "one value short": tamper(cursor),
        "another sort": cursor,
        "wrong id type": encode([names, [*values[:2], 5]]),
        "bad id": encode([names, [*values[:2], "nope"]]),
        "null id": encode([names, [*values[:2], None]]),
        "text for a number": encode([names, ["x", values[1], values[2]]]),
        "NUL in text": encode([names, [values[0], "a\x00", values[2]]]),
        "object": encode({"a": 1, "b": 2}),
        "values not a list": encode([names, "abc"]),
    }
    for name, value in refused.items():
        sort = "title" if name == "another sort" else "-views,title"
        response = await module_admin.get(URL, params={"sort": sort, "cursor": value})
        assert response.status_code == 400, name
        assert response.json()["error"]["code"] == "invalid_cursor", name
        assert response.json()["error"]["parameter"] == "cursor", name


LIST_ERRORS = [
    Case("per_page above max", "GET", URL + "?per_page=501", status=400, expect={"error": {"code": "invalid_parameter", "parameter": "per_page"}}),
    Case("per_page zero", "GET", URL + "?per_page=0", status=400, expect={"error": {"code": "invalid_parameter", "parameter": "per_page"}}),
    Case("per_page negative", "GET", URL + "?per_page=-1", status=400, expect=error("invalid_parameter")),
    Case("per_page not a number", "GET", URL + "?per_page=ten", status=400, expect=error("invalid_parameter")),
    Case("per_page unicode digits", "GET", URL + "?per_page=%D9%A3", status=400, expect=error("invalid_parameter")),
    Case("per_page huge", "GET", URL + "?per_page=" + "9" * 40, status=400, expect=error("invalid_parameter")),
    Case("page zero", "GET", URL + "?page=0", status=400, expect={"error": {"code": "invalid_parameter", "parameter": "page"}}),
    Case("page fraction", "GET", URL + "?page=1.5", status=400, expect={"error": {"code": "invalid_parameter", "message": "page must be a whole number from 1 to 1000000000, not '1.5'"}}),
    Case("page negative", "GET", URL + "?page=-1", status=400, expect={"error": {"code": "invalid_parameter", "parameter": "page", "message": "page must be 1 or more, not -1"}}),
    Case("per_page too large says the most", "GET", URL + "?per_page=501", status=400, expect={"error": {"message": "per_page must be at most 500, not 501"}}),
    Case("page beyond max_offset", "GET", URL + "?page=202&per_page=500", status=400, expect={"error": {"code": "invalid_parameter", "parameter": "page"}}),
    Case("page just within max_offset", "GET", URL + "?page=201&per_page=500", status=200, expect={"items": [], "total": COUNT}),
    Case("page at the max_offset", "GET", URL + "?page=3334", status=200, expect={"items": [], "page": 3334}),
    Case("page past max_offset", "GET", URL + "?page=3335", status=400, expect=error("invalid_parameter")),
    Case("cursor with page 2", "GET", URL + "?page=2&cursor=abc", status=400, expect={"error": {"code": "invalid_parameter", "parameter": "cursor"}}),
    Case("unknown parameter", "GET", URL + "?nope=1", status=400, expect={"error": {"code": "invalid_parameter", "parameter": "nope"}}),
    Case("filter on an unknown field", "GET", URL + "?filter=nope > 1", status=400, expect=error("invalid_filter")),
    Case("skip_total not a boolean", "GET", URL + "?skip_total=maybe", status=400, expect={"error": {"code": "invalid_boolean", "parameter": "skip_total", "value": "maybe"}}),
    Case("skip_total=1 is no boolean", "GET", URL + "?skip_total=1", status=400, expect={"error": {"code": "invalid_boolean", "parameter": "skip_total", "value": "1"}}),
    Case("skip_total=True is no boolean", "GET", URL + "?skip_total=True", status=400, expect={"error": {"code": "invalid_boolean", "parameter": "skip_total", "value": "True"}}),
    Case("skip_total empty is no boolean", "GET", URL + "?skip_total=", status=400, expect={"error": {"code": "invalid_boolean", "parameter": "skip_total", "value": ""}}),
    Case("sort by unknown field", "GET", URL + "?sort=nope", status=400, expect={"error": {"code": "invalid_parameter", "parameter": "sort"}}),
    Case("sort by hidden field", "GET", URL + "?sort=secret", status=400, expect=error("invalid_parameter")),
    Case("sort by multi-valued field", "GET", URL + "?sort=tags", status=400, expect=error("invalid_parameter")),
    Case("sort by json field", "GET", URL + "?sort=-meta", status=400, expect=error("invalid_parameter")),
    Case("sort by a single file field", "GET", URL + "?sort=image", status=400, expect={"error": {"code": "invalid_parameter", "parameter": "sort", "message": "cannot sort by 'image': file fields cannot be sorted on: sort by another field"}}),
    Case("sort by multi-valued field says so", "GET", URL + "?sort=tags", status=400, expect={"error": {"message": "cannot sort by 'tags': select fields with several values have no order"}}),
    Case("sort with an empty name", "GET", URL + "?sort=title,,views", status=400, expect=error("invalid_parameter")),
    Case("sort by a lone minus", "GET", URL + "?sort=-", status=400, expect=error("invalid_parameter")),
    Case("sort by too many fields", "GET", URL + "?sort=title,views,score,id,created,updated", status=400, expect=error("invalid_parameter")),
    Case("sort by an SQL fragment", "GET", URL + "?sort=title;drop table posts", status=400, expect=error("invalid_parameter")),
    Case("empty sort is the default", "GET", URL + "?sort=&per_page=1", status=200, expect={"items": [{"title": "t04"}]}),
    Case("very long cursor", "GET", URL + "?cursor=" + "a" * 5000, status=400, expect=error("invalid_parameter")),
]  # fmt: skip


@cases(LIST_ERRORS)
async def test_list_parameters(module_admin, records, case):
    await run(module_admin, case)


async def test_cursor_survives_a_new_pattern_on_the_sort_field(admin):
    """A cursor holds values the server stored; a later `pattern` must not make them invalid."""
    await apply_schema(admin, SCHEMA)
    for title in ("Alpha", "Bravo", "Charlie"):
        assert (await admin.post(URL, json={"title": title})).status_code == 201
    changed = {"collections": {"posts": {"fields": {**SCHEMA["collections"]["posts"]["fields"]}}}}
    changed["collections"]["posts"]["fields"]["title"] = {
        "type": "text",
        "required": True,
        "pattern": "[a-z]+",
    }
    await apply_schema(admin, changed)
    walked = await walk(admin, URL, {"sort": "title", "per_page": 1})
    assert [r["title"] for r in walked] == ["Alpha", "Bravo", "Charlie"]
