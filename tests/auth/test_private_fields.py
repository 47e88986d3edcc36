"""Private auth fields of users (`verified`, `disabled`, `anonymous`): once a users rule lets
others see a profile, they still see none of these, in lists, gets, projections, write answers
and expanded relations; no filter or sort of theirs can probe them; the account itself and admins
see them; and a schema file may share one (`verified: {private: false}`)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.auth.conftest import ADMIN, Account, sign_up
from tests.conftest import apply_schema

RECORDS = "/api/collections/users/records"
POSTS = "/api/collections/posts/records"
PRIVATE = ("verified", "disabled", "anonymous")
USERS_RULES = {"list": "", "view": "auth.id IS NOT NULL", "update": "auth.id IS NOT NULL"}


def document(**system: Any) -> dict[str, Any]:
    """The schema, with `system` entries for users' built-in fields."""
    return {
        "collections": {
            "users": {
                "fields": {**system, "mentor": {"type": "relation", "collection": "users"}},
                "rules": USERS_RULES,
            },
            "posts": {
                "fields": {
                    "title": "text",
                    "author": {"type": "relation", "collection": "users"},
                    "readers": {"type": "relation", "collection": "users", "multiple": True},
                },
                "rules": {"list": "", "view": "", "create": "author = auth.id"},
            },
        }
    }


def shows(record: dict[str, Any]) -> tuple[str, ...]:
    """The private fields a record carries."""
    return tuple(name for name in PRIVATE if name in record)


@pytest.fixture
async def bob(anon: httpx.AsyncClient) -> Account:
    return await sign_up(anon, "bob@example.com")


async def _get(client: httpx.AsyncClient, url: str, who: Account | None, **params: str) -> Any:
    response = await client.get(url, params=params, headers=who.headers if who else ADMIN)
    assert response.status_code == 200, (url, params, response.text)
    return response.json()


async def test_others_never_see_private_fields(
    anon: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    await apply_schema(anon, document())
    mentored = await anon.patch(f"{RECORDS}/{bob.id}", json={"mentor": alice.id}, headers=ADMIN)
    assert mentored.status_code == 200, mentored.text
    # gets: someone else's record, one's own, an admin's view
    assert shows(await _get(anon, f"{RECORDS}/{bob.id}", alice)) == ()
    assert shows(await _get(anon, f"{RECORDS}/{alice.id}", alice)) == PRIVATE
    assert shows(await _get(anon, f"{RECORDS}/{bob.id}", None)) == PRIVATE
    # lists: each row for itself
    listed = await _get(anon, RECORDS, alice)
    assert listed["total"] == 2
    assert {u["id"]: shows(u) for u in listed["items"]} == {alice.id: PRIVATE, bob.id: ()}
    # projections that ask for them
    projected = await _get(anon, RECORDS, alice, fields="id,verified,disabled", sort="created")
    assert projected["items"] == [
        {"id": alice.id, "verified": True, "disabled": False},
        {"id": bob.id},
    ]
    assert await _get(anon, f"{RECORDS}/{bob.id}", alice, fields="verified") == {}
    # write answers
    renamed = await anon.patch(f"{RECORDS}/{bob.id}", json={"name": "B"}, headers=alice.headers)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "B" and shows(renamed.json()) == ()
    own = await anon.patch(f"{RECORDS}/{alice.id}", json={"name": "A"}, headers=alice.headers)
    assert shows(own.json()) == PRIVATE


async def test_expanded_accounts_hide_private_fields(
    anon: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    await apply_schema(anon, document())
    await anon.patch(f"{RECORDS}/{bob.id}", json={"mentor": alice.id}, headers=ADMIN)
    await anon.patch(f"{RECORDS}/{alice.id}", json={"mentor": bob.id}, headers=ADMIN)
    readers = [alice.id, bob.id]
    for who in (alice, bob):
        body = {"title": who.email, "author": who.id, "readers": readers}
        created = await anon.post(POSTS, json=body, headers=who.headers)
        assert created.status_code == 201, created.text
    expand = "author.mentor,readers"
    for viewer, other in ((alice, bob), (bob, alice)):
        page = await _get(anon, POSTS, viewer, expand=expand, sort="created")
        for post in page["items"]:
            author = post["expand"]["author"]
            mine = author["id"] == viewer.id
            assert shows(author) == (PRIVATE if mine else ())
            mentor = author["expand"]["mentor"]  # the other one, nested
            assert mentor["id"] == (other.id if mine else viewer.id)
            assert shows(mentor) == (() if mine else PRIVATE)
            assert [(r["id"], shows(r)) for r in post["expand"]["readers"]] == [
                (alice.id, PRIVATE if viewer is alice else ()),
                (bob.id, PRIVATE if viewer is bob else ()),
            ]
        one = await _get(anon, f"{RECORDS}/{other.id}", viewer, expand="mentor")
        assert shows(one) == () and shows(one["expand"]["mentor"]) == PRIVATE
    admin_page = await _get(anon, POSTS, None, expand=expand)
    for post in admin_page["items"]:
        assert shows(post["expand"]["author"]) == PRIVATE
        assert all(shows(r) == PRIVATE for r in post["expand"]["readers"])


PROBES = [
    (RECORDS, {"filter": "verified = false"}),
    (RECORDS, {"filter": "disabled = true OR name = 'x'"}),
    (RECORDS, {"filter": "mentor.anonymous = true"}),
    (RECORDS, {"sort": "verified"}),
    (RECORDS, {"sort": "-mentor.disabled"}),
    (POSTS, {"filter": "author.verified = true"}),
    (POSTS, {"filter": "readers.disabled = true"}),
    (POSTS, {"sort": "author.anonymous"}),
]


async def test_filters_and_sorts_cannot_probe_private_fields(
    anon: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    await apply_schema(anon, document())
    for url, query in PROBES:
        response = await anon.get(url, params=query, headers=alice.headers)
        assert response.status_code == 400, (url, query, response.text)
        assert response.json()["error"]["code"] in ("invalid_filter", "invalid_parameter")
        assert "shown only to the account itself" in response.json()["error"]["message"]
        admin = await anon.get(url, params=query, headers=ADMIN)
        assert admin.status_code == 200, (url, query, admin.text)
    # the caller's own fields, through auth.*, are theirs to use
    own = await _get(anon, RECORDS, alice, filter="auth.verified = true AND id = auth.id")
    assert [u["id"] for u in own["items"]] == [alice.id]


async def test_a_schema_may_share_a_private_field(
    anon: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    shared = document(verified={"private": False})
    await apply_schema(anon, shared)
    seen = await _get(anon, f"{RECORDS}/{bob.id}", alice)
    assert shows(seen) == ("verified",)
    filtered = await _get(anon, RECORDS, alice, filter="verified = true")
    assert filtered["total"] == 2
    refused = await anon.get(RECORDS, params={"filter": "disabled = false"}, headers=alice.headers)
    assert refused.status_code == 400
    # the choice is kept (the admin API shows it as the file would say it) and re-applies as is
    live = await _get(anon, "/api/admin/collections/users", None)
    assert live["fields"]["verified"] == {"private": False}, live
    again = await anon.post("/api/admin/schema/diff", json={"document": shared}, headers=ADMIN)
    assert again.json()["steps"] == [], again.text
    back = await anon.post("/api/admin/schema/diff", json={"document": document()}, headers=ADMIN)
    assert [s["summary"] for s in back.json()["steps"]] == ["update users.verified: private"]
    await apply_schema(anon, document())
    assert shows(await _get(anon, f"{RECORDS}/{bob.id}", alice)) == ()


@pytest.mark.parametrize(
    "entry",
    [
        {"email": {"private": False}},
        {"last_sign_in": {"private": False}},
        {"password_hash": {"private": False}},
        {"verified": {"private": False, "type": "bool"}},
        {"verified": {"private": "no"}},
        {"verified": "bool"},
    ],
)
async def test_only_private_may_be_said_of_a_system_field(
    admin: httpx.AsyncClient, entry: dict[str, Any]
) -> None:
    doc = {"collections": {"users": {"fields": entry}}}
    response = await admin.post("/api/admin/schema/diff", json={"document": doc})
    assert response.status_code == 400, response.text
    [problem] = response.json()["error"]["problems"]
    assert "built-in field of users" in problem
