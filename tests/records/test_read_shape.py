"""What a read returns, whatever the names: `fields=` without `id` (counted, paged, followed by
cursor), `expand=` of relations whose names pass PostgreSQL's 63-byte identifier limit together,
and the names a record's own keys would collide with (`expand`), refused in the schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningApp, apply_schema
from tests.records.ordering import python_sorted, walk
from tests.records.scenarios import Case, cases, error, run

# Two relation names of 62 bytes sharing their first 60, and one of 63: as `_e_<name>` output
# columns PostgreSQL cut all three to the same 63 bytes.
LONG_A = "r" * 60 + "_a"
LONG_B = "r" * 60 + "_b"
LONGEST = "s" * 63
PUBLIC = {"list": "", "view": "", "create": "", "update": ""}
SCHEMA: dict[str, Any] = {
    "collections": {
        "people": {
            "fields": {
                "name": "text",
                "friend": {"type": "relation", "collection": "people"},
            },
            "rules": PUBLIC,
        },
        "posts": {
            "fields": {
                "title": "text",
                "views": "integer",
                LONG_A: {"type": "relation", "collection": "people"},
                LONG_B: {"type": "relation", "collection": "people"},
                LONGEST: {"type": "relation", "collection": "people", "multiple": True},
            },
            "rules": PUBLIC,
        },
    }
}
POSTS = "/api/collections/posts/records"
PEOPLE = "/api/collections/people/records"
COUNT = 9


@pytest.fixture(scope="module")
async def world(module_admin) -> dict[str, Any]:
    await apply_schema(module_admin, SCHEMA)
    ann = (await module_admin.post(PEOPLE, json={"name": "Ann"})).json()
    bob = (await module_admin.post(PEOPLE, json={"name": "Bob", "friend": ann["id"]})).json()
    posts = []
    for i in range(COUNT):
        body = {"title": f"t{i}", "views": i % 3, LONG_A: ann["id"], LONG_B: bob["id"]}
        body[LONGEST] = [bob["id"], ann["id"]]
        response = await module_admin.post(POSTS, json=body)
        assert response.status_code == 201, response.text
        posts.append(response.json())
    return {"ann": ann, "bob": bob, "posts": posts}


# -- fields= without id ---------------------------------------------------------------------------

PROJECTIONS = [
    Case("title only, counted", "GET", POSTS + "?fields=title", expect={"total": COUNT, "items": lambda items: all(set(i) == {"title"} for i in items)}),
    Case("title only, empty page", "GET", POSTS + "?fields=title&filter=views > 10", expect={"items": [], "total": 0, "next_cursor": None}),
    Case("title only, past the end", "GET", POSTS + "?fields=title&page=5&per_page=5", expect={"items": [], "total": COUNT}),
    Case("views only, sorted by it", "GET", POSTS + "?fields=views&sort=-views", expect={"total": COUNT, "items": lambda items: [i["views"] for i in items] == sorted((i % 3 for i in range(COUNT)), reverse=True)}),
    Case("expand only", "GET", POSTS + f"?fields=title&expand={LONG_A}&per_page=2", expect={"total": COUNT, "items": lambda items: all(set(i) == {"title", "expand"} for i in items)}),
]  # fmt: skip


@cases(PROJECTIONS)
async def test_projection_without_id(anon_module, world, case: Case) -> None:
    await run(anon_module, case)


@pytest.mark.parametrize("sort", ["-created", "views,-title", "title"])
@pytest.mark.parametrize("skip_total", ["false", "true"])
async def test_cursor_pages_without_id(anon_module, world, sort: str, skip_total: str) -> None:
    """Following next_cursor with fields=title visits every record once, in order."""
    params = {"fields": "title", "sort": sort, "per_page": 2, "skip_total": skip_total}
    walked = await walk(anon_module, POSTS, params)
    assert all(set(item) == {"title"} for item in walked)
    expected = python_sorted(world["posts"], sort)
    assert [item["title"] for item in walked] == [p["title"] for p in expected]


@pytest.fixture
async def anon_module(module_app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    """A visitor (no credentials) on the module's app."""
    transport = httpx.ASGITransport(app=module_app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


# -- expand with long relation names ---------------------------------------------------------------


async def test_long_relation_names_expand_under_their_own_keys(anon_module, world) -> None:
    ann, bob, post = world["ann"], world["bob"], world["posts"][0]
    expand = f"{LONG_A},{LONG_B}.friend,{LONGEST}"
    got = await anon_module.get(f"{POSTS}/{post['id']}", params={"expand": expand})
    assert got.status_code == 200, got.text
    expanded = got.json()["expand"]
    assert set(expanded) == {LONG_A, LONG_B, LONGEST}
    assert expanded[LONG_A]["id"] == ann["id"]
    assert expanded[LONG_B]["id"] == bob["id"]
    assert expanded[LONG_B]["expand"]["friend"]["id"] == ann["id"]
    assert [p["id"] for p in expanded[LONGEST]] == [bob["id"], ann["id"]]
    listed = await anon_module.get(POSTS, params={"expand": expand, "per_page": 3})
    assert listed.status_code == 200, listed.text
    for item in listed.json()["items"]:
        assert set(item["expand"]) == {LONG_A, LONG_B, LONGEST}
        assert item["expand"][LONG_A]["name"] == "Ann"
        assert item["expand"][LONG_B]["name"] == "Bob"


# -- names a record's own keys would collide with -------------------------------------------------

RESERVED = [
    ("posts", {"fields": {"expand": "text"}}, "expand"),
    ("posts", {"fields": {"expand": {"type": "relation", "collection": "people"}}}, "expand"),
    ("users", {"fields": {"expand": "json"}}, "expand"),
    ("users", {"fields": {"has_password": "bool"}}, "has_password"),
    ("users", {"fields": {"mfa_enabled": "bool"}}, "mfa_enabled"),
    ("users", {"fields": {"providers": "text"}}, "providers"),
    ("users", {"fields": {"active_sessions": "integer"}}, "active_sessions"),
]


@pytest.mark.parametrize(("collection", "definition", "name"), RESERVED)
async def test_reserved_field_names_are_refused(
    module_admin, world, collection: str, definition: dict[str, Any], name: str
) -> None:
    document = {"collections": {**SCHEMA["collections"], collection: definition}}
    case = Case(
        "reserved", "POST", "/api/admin/schema/apply", {"document": document}, 400,
        error("invalid_schema"),
    )  # fmt: skip
    problems = (await run(module_admin, case)).json()["error"]["problems"]
    assert any(
        p.startswith(f"collections.{collection}.fields.{name}:") and "choose another name" in p
        for p in problems
    ), problems


async def test_the_auth_view_keys_are_fine_elsewhere(module_admin, world) -> None:
    """`providers` is a key of the auth API's own view of users only: other collections may
    name a field so."""
    flags = {"fields": {"providers": "text", "has_password": "bool"}}
    document = {"collections": {**SCHEMA["collections"], "flags": flags}}
    response = await module_admin.post("/api/admin/schema/diff", json={"document": document})
    assert response.status_code == 200, response.text
