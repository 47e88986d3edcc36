"""The built-in users collection through the records API: users see and edit only their own
record (the default rules), system fields are read-only, `email` is hidden from others,
`password_hash` is never readable, and users are created by signing up, never as records."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.auth.conftest import ADMIN, PASSWORD, Account, last_link, mails, sign_up, token_of
from tests.conftest import apply_schema

RECORDS = "/api/collections/users/records"
POSTS = {
    "fields": {
        "title": "text",
        "author": {"type": "relation", "collection": "users", "required": True},
    },
    "rules": {"list": "", "view": "", "create": "author = auth.id"},
}
PROFILES_PUBLIC = {
    "collections": {
        "users": {"rules": {"list": "", "view": "auth.id IS NOT NULL", "update": "id = auth.id"}},
        "posts": POSTS,
    }
}


@pytest.fixture
async def bob(anon: httpx.AsyncClient) -> Account:
    return await sign_up(anon, "bob@example.com")


def no_secrets(response: httpx.Response) -> None:
    assert "password_hash" not in response.text
    assert "$argon2" not in response.text


async def test_a_user_sees_only_their_own_record(
    anon: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    own = await anon.get(f"{RECORDS}/{alice.id}", headers=alice.headers)
    assert own.status_code == 200, own.text
    assert own.json()["id"] == alice.id
    assert own.json()["verified"] is True
    assert "email" not in own.json()  # hidden: the records API never shows it
    no_secrets(own)
    other = await anon.get(f"{RECORDS}/{bob.id}", headers=alice.headers)
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "record_not_found"
    listed = await anon.get(RECORDS, headers=alice.headers)
    assert [u["id"] for u in listed.json()["items"]] == [alice.id]
    assert listed.json()["total"] == 1
    no_secrets(listed)
    nobody = await anon.get(RECORDS)
    assert nobody.json()["items"] == []
    assert (await anon.get(f"{RECORDS}/{alice.id}")).status_code == 404


async def test_password_hash_never_appears(
    anon: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    await apply_schema(anon, PROFILES_PUBLIC)
    post = await anon.post(
        "/api/collections/posts/records",
        json={"title": "hi", "author": bob.id},
        headers=bob.headers,
    )
    assert post.status_code == 201, post.text
    responses = [
        await anon.get("/api/auth/me", headers=alice.headers),
        await anon.get(f"{RECORDS}/{alice.id}", headers=alice.headers),
        await anon.get(f"{RECORDS}/{bob.id}", headers=alice.headers),
        await anon.get(RECORDS, headers=alice.headers),
        await anon.get(RECORDS, headers=ADMIN),
        await anon.get(f"{RECORDS}/{alice.id}", headers=ADMIN),
        await anon.get("/api/admin/users", headers=ADMIN),
        await anon.get(f"/api/admin/users/{alice.id}", headers=ADMIN),
        await anon.get("/api/collections/posts/records?expand=author", headers=alice.headers),
        await anon.get("/api/collections/posts/records?expand=author", headers=ADMIN),
        await anon.patch(f"{RECORDS}/{alice.id}", json={"name": "A"}, headers=alice.headers),
    ]
    for response in responses:
        assert response.status_code == 200, (response.url, response.text)
        no_secrets(response)
    me = responses[0].json()
    assert me["has_password"] is True
    # Another user's email is hidden too, even where their profile is visible.
    bob_seen = responses[2].json()
    assert bob_seen["id"] == bob.id
    assert "email" not in bob_seen
    expanded = responses[8].json()["items"][0]["expand"]["author"]
    assert expanded["id"] == bob.id
    assert "email" not in expanded


HIDDEN_QUERIES = [
    {"filter": "password_hash != ''"},
    {"filter": "password_hash ~ '$argon2%'"},
    {"filter": "password_hash IS NOT NULL"},
    {"filter": "auth.password_hash != ''"},
    {"sort": "password_hash"},
    {"sort": "-password_hash"},
    {"fields": "id,password_hash"},
    {"filter": "email = 'bob@example.com'"},
    {"filter": "email LIKE '%@example.com'"},
    {"filter": "auth.email != ''"},
    {"sort": "email"},
    {"fields": "email"},
]


async def test_hidden_fields_cannot_be_filtered_or_sorted(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    for query in HIDDEN_QUERIES:
        for headers in (alice.headers, ADMIN):
            response = await anon.get(RECORDS, params=query, headers=headers)
            assert response.status_code == 400, (query, response.text)
            assert response.json()["error"]["code"] in ("invalid_filter", "invalid_parameter")
            assert "$argon2" not in response.text


async def test_hidden_fields_cannot_be_reached_through_relations(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    await apply_schema(anon, PROFILES_PUBLIC)
    for query in [
        {"filter": "author.password_hash != ''"},
        {"filter": "author.email = 'alice@example.com'"},
        {"sort": "author.password_hash"},
        {"sort": "author.email"},
    ]:
        response = await anon.get("/api/collections/posts/records", params=query)
        assert response.status_code == 400, (query, response.text)


SECRET_RULES = [
    ("users", {"list": "password_hash != ''"}),
    ("users", {"view": "auth.password_hash != ''"}),
    ("users", {"create": "body.password_hash IS NULL"}),
    ("users", {"update": "body.password_hash LIKE '$argon2%'"}),
    ("posts", {"list": "author.password_hash != ''"}),
    ("posts", {"view": "auth.password_hash != ''"}),
]


async def test_rules_cannot_read_password_hash(admin: httpx.AsyncClient) -> None:
    for name, rules in SECRET_RULES:
        fields = POSTS["fields"] if name == "posts" else {}
        document = {"collections": {name: {"fields": fields, "rules": rules}}}
        response = await admin.post("/api/admin/schema/apply", json={"document": document})
        assert response.status_code == 400, (name, rules, response.text)
    history = (await admin.get("/api/admin/schema/history")).json()["items"]
    assert len(history) == 1  # nothing applied


async def test_system_fields_cannot_be_redeclared(admin: httpx.AsyncClient) -> None:
    for name in ["password_hash", "email", "verified", "disabled"]:
        document = {"collections": {"users": {"fields": {name: {"type": "text"}}}}}
        response = await admin.post("/api/admin/schema/apply", json={"document": document})
        assert response.status_code == 400, (name, response.text)


# -- writes ----------------------------------------------------------------------------------------


async def test_a_user_updates_their_own_fields_only(
    anon: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    updated = await anon.patch(
        f"{RECORDS}/{alice.id}", json={"name": "Alice A."}, headers=alice.headers
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "Alice A."
    for field, value in [
        ("email", "mallory@example.com"),
        ("verified", False),
        ("disabled", False),
        ("anonymous", True),
        ("password_hash", "x"),
        ("last_sign_in", None),
    ]:
        response = await anon.patch(
            f"{RECORDS}/{alice.id}", json={field: value, "name": "x"}, headers=alice.headers
        )
        assert response.status_code == 400, (field, response.text)
        assert response.json()["error"]["fields"][field]["code"] == "read_only"
    others = await anon.patch(f"{RECORDS}/{bob.id}", json={"name": "B"}, headers=alice.headers)
    assert others.status_code == 404
    me = (await anon.get("/api/auth/me", headers=alice.headers)).json()
    assert (me["name"], me["email"], me["verified"]) == ("Alice A.", alice.email, True)
    bob_now = (await anon.get(f"/api/admin/users/{bob.id}", headers=ADMIN)).json()
    assert bob_now["name"] is None


async def test_users_are_not_created_or_deleted_as_records(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    body = {"name": "Mallory"}
    for headers in ({}, alice.headers):
        created = await anon.post(RECORDS, json=body, headers=headers)
        assert created.status_code == 403, created.text
        assert created.json()["error"]["code"] == "use_auth_api"
        upserted = await anon.put(
            f"{RECORDS}/0190a1b2-0000-7000-8000-000000000001", json=body, headers=headers
        )
        assert upserted.status_code == 403, upserted.text
        batch = await anon.post(
            "/api/batch",
            json={"operations": [{"op": "create", "collection": "users", "body": body}]},
            headers=headers,
        )
        assert batch.status_code == 403, batch.text
    deleted = await anon.delete(f"{RECORDS}/{alice.id}", headers=alice.headers)
    assert deleted.status_code == 403  # the delete rule is locked
    users = (await anon.get("/api/admin/users", headers=ADMIN)).json()
    assert [u["id"] for u in users["items"]] == [alice.id]
    # Admins may add a user record directly (no credentials: e.g. an import).
    imported = await anon.post(RECORDS, json=body, headers=ADMIN)
    assert imported.status_code == 201, imported.text
    no_secrets(imported)


# -- sign-up and the users schema ------------------------------------------------------------------


async def sign_up_answer(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/api/auth/sign-up", json={"password": PASSWORD, **body})


async def test_a_null_create_rule_closes_sign_up(
    admin: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    await apply_schema(admin, {"collections": {"users": {"rules": {"create": None}}}})
    response = await sign_up_answer(anon, email="new@example.com")
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "sign_up_closed"
    assert (await anon.get("/api/auth/methods")).json()["sign_up"] is False
    assert await mails(anon, "new@example.com") == []
    await admin.patch("/api/admin/settings", json={"auth.anonymous": True})
    anonymous = await anon.post("/api/auth/anonymous")
    assert anonymous.status_code == 403
    assert anonymous.json()["error"]["code"] == "sign_up_closed"
    assert (await admin.get("/api/admin/users")).json()["total"] == 0
    # Admins still create accounts.
    made = await admin.post("/api/admin/users", json={"email": "new@example.com"})
    assert made.status_code == 201, made.text


async def test_a_create_rule_can_test_the_email(
    admin: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    rules = {"list": "id = auth.id", "create": "body.email LIKE '%@example.com'"}
    await apply_schema(admin, {"collections": {"users": {"rules": rules}}})
    refused = await sign_up_answer(anon, email="eve@elsewhere.org")
    assert refused.status_code == 403, refused.text
    assert await mails(anon, "eve@elsewhere.org") == []
    accepted = await sign_up_answer(anon, email="ann@example.com")
    assert accepted.status_code == 202, accepted.text
    users = (await admin.get("/api/admin/users")).json()["items"]
    assert [u["email"] for u in users] == ["ann@example.com"]


NICKNAMES = {"collections": {"users": {"fields": {"nickname": {"type": "text", "max": 40}}}}}


async def test_custom_fields_on_sign_up(admin: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    await apply_schema(admin, NICKNAMES)
    account = await sign_up(anon, "nick@example.com", nickname="Nick", name="Nicholas")
    me = (await anon.get("/api/auth/me", headers=account.headers)).json()
    assert (me["nickname"], me["name"]) == ("Nick", "Nicholas")
    own = await anon.get(f"{RECORDS}/{account.id}", headers=account.headers)
    assert own.json()["nickname"] == "Nick"
    changed = await anon.patch(
        f"{RECORDS}/{account.id}", json={"nickname": "N"}, headers=account.headers
    )
    assert changed.json()["nickname"] == "N"


BAD_SIGN_UPS: list[tuple[dict[str, Any], str, str | None]] = [
    ({"nickname": "x" * 41}, "nickname", None),
    ({"nickname": 5}, "nickname", None),
    ({"favourite": "x"}, "favourite", "unknown_field"),
    ({"verified": True}, "verified", "read_only"),
    ({"disabled": False}, "disabled", "read_only"),
    ({"anonymous": True}, "anonymous", "read_only"),
    ({"password_hash": "$argon2id$x"}, "password_hash", "read_only"),
    ({"created": "2020-01-01T00:00:00Z"}, "created", "read_only"),
]


async def test_bad_sign_up_fields_create_nothing(
    admin: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    await apply_schema(admin, NICKNAMES)
    for body, field, code in BAD_SIGN_UPS:
        response = await sign_up_answer(anon, email="new@example.com", **body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert field in error.get("fields", {}), (body, error)
        if code:
            assert error["fields"][field]["code"] == code, (body, error)
    assert (await admin.get("/api/admin/users")).json()["total"] == 0
    assert await mails(anon, "new@example.com") == []


async def test_sign_up_cannot_choose_the_id(anon: httpx.AsyncClient) -> None:
    response = await sign_up_answer(
        anon, email="new@example.com", id="0190a1b2-0000-7000-8000-000000000001"
    )
    assert response.status_code == 400
    assert await mails(anon, "new@example.com") == []


async def test_a_verified_sign_up_ends_verified(anon: httpx.AsyncClient) -> None:
    """The only way to `verified` is the link (not the body, not the records API)."""
    response = await sign_up_answer(anon, email="new@example.com")
    assert response.status_code == 202
    user = (await anon.get("/api/admin/users", headers=ADMIN)).json()["items"][0]
    assert user["verified"] is False
    link = await last_link(anon, "new@example.com", "verify")
    confirmed = await anon.post("/api/auth/verification/confirm", json={"token": token_of(link)})
    assert confirmed.status_code == 200
    user = (await anon.get(f"/api/admin/users/{user['id']}", headers=ADMIN)).json()
    assert user["verified"] is True
