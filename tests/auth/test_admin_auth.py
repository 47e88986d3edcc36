"""The admin auth API: users and their sessions, the mail outbox, runtime settings and signing
keys; admins only (401 without credentials, 403 for a user's token)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from baas.runtime_settings import RUNTIME
from tests.auth.conftest import ADMIN, PASSWORD, Account, mails, sign_in, sign_up
from tests.conftest import RunningApp, apply_schema

NOBODY = str(uuid.uuid4())
ROUTES = [
    ("GET", "/api/admin/users"),
    ("POST", "/api/admin/users"),
    ("GET", "/api/admin/users/{id}"),
    ("PATCH", "/api/admin/users/{id}"),
    ("DELETE", "/api/admin/users/{id}"),
    ("GET", "/api/admin/users/{id}/sessions"),
    ("DELETE", "/api/admin/users/{id}/sessions"),
    ("GET", "/api/admin/mail"),
    ("GET", "/api/admin/mail/{id}"),
    ("GET", "/api/admin/settings"),
    ("PATCH", "/api/admin/settings"),
    ("GET", "/api/admin/superusers"),
    ("POST", "/api/admin/superusers"),
    ("DELETE", "/api/admin/superusers/{id}"),
    ("GET", "/api/admin/signing-keys"),
    ("POST", "/api/admin/signing-keys/rotate"),
    ("DELETE", "/api/admin/signing-keys/{id}"),
]


async def call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], user_id: str
) -> httpx.Response:
    body = {"email": "x@example.com", "password": PASSWORD, "disabled": True, "app.name": "x"}
    json = body if method in ("POST", "PATCH") else None
    return await client.request(method, path.format(id=user_id), json=json, headers=headers)


async def test_every_route_needs_an_admin(anon: httpx.AsyncClient, alice: Account) -> None:
    for method, path in ROUTES:
        response = await call(anon, method, path, {}, alice.id)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        response = await call(anon, method, path, alice.headers, alice.id)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "forbidden"
        bad = {"Authorization": "Bearer not-a-token"}
        response = await call(anon, method, path, bad, alice.id)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "invalid_token"
    # Nothing the refused calls asked for happened.
    me = await anon.get("/api/auth/me", headers=alice.headers)
    assert me.status_code == 200
    assert me.json()["email"] == alice.email
    users = (await anon.get("/api/admin/users", headers=ADMIN)).json()
    assert [u["email"] for u in users["items"]] == [alice.email]


# -- users -----------------------------------------------------------------------------------------


async def create(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/api/admin/users", json=body, headers=ADMIN)


async def test_users_search_and_pages(anon: httpx.AsyncClient) -> None:
    emails = ["ann1@example.com", "ann2@example.com", "ann_3@example.com", "bob@example.org"]
    ids = {}
    for email in emails:
        created = await create(anon, email=email)
        assert created.status_code == 201, created.text
        ids[email] = created.json()["id"]

    async def users(**params: Any) -> Any:
        response = await anon.get("/api/admin/users", params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        return response.json()

    everyone = await users()
    assert everyone["total"] == 4
    assert [u["email"] for u in everyone["items"]] == emails[::-1]  # newest first
    found = await users(search="ANN")
    assert sorted(u["email"] for u in found["items"]) == emails[:3]
    assert found["total"] == 3
    assert [u["email"] for u in (await users(search="_"))["items"]] == ["ann_3@example.com"]
    assert (await users(search="%"))["items"] == []  # a wildcard is a plain character
    by_id = await users(search=ids["bob@example.org"])
    assert [u["email"] for u in by_id["items"]] == ["bob@example.org"]

    first = await users(per_page=3, page=1)
    second = await users(per_page=3, page=2)
    assert [u["email"] for u in first["items"] + second["items"]] == emails[::-1]
    assert first["total"] == second["total"] == 4
    assert (first["page"], first["per_page"]) == (1, 3)
    beyond = await users(per_page=3, page=5)
    assert beyond["items"] == []
    assert beyond["total"] == 4

    for params in [{"per_page": "0"}, {"per_page": "501"}, {"page": "0"}, {"page": "x"}]:
        response = await anon.get("/api/admin/users", params=params, headers=ADMIN)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"]["code"] == "invalid_parameter"
    response = await anon.get("/api/admin/users", params={"search": "a" * 201}, headers=ADMIN)
    assert response.status_code == 400


async def test_create_with_a_password(anon: httpx.AsyncClient) -> None:
    created = await create(anon, email=" Ann@Example.com ", password=PASSWORD, name="Ann")
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["email"] == "ann@example.com"
    assert user["name"] == "Ann"
    assert user["has_password"] is True
    assert user["verified"] is False
    assert "password_hash" not in user
    refused = await anon.post(
        "/api/auth/sign-in", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "email_not_verified"

    verified = await create(anon, email="vic@example.com", password=PASSWORD, verified=True)
    assert verified.status_code == 201, verified.text
    assert (await sign_in(anon, "vic@example.com")).id == verified.json()["id"]


async def test_create_without_a_password(anon: httpx.AsyncClient) -> None:
    created = await create(anon, email="nopass@example.com", verified=True)
    assert created.status_code == 201, created.text
    assert created.json()["has_password"] is False
    response = await anon.post(
        "/api/auth/sign-in", json={"email": "nopass@example.com", "password": PASSWORD}
    )
    assert response.status_code == 401
    # The user sets a password through a reset link.
    reset = await anon.post("/api/auth/password-reset", json={"email": "nopass@example.com"})
    assert reset.status_code == 202
    assert (await mails(anon, "nopass@example.com"))[0]["template"] == "reset"


async def test_create_with_a_chosen_id(anon: httpx.AsyncClient) -> None:
    """An import keeps its ids: the id given is the id used, or the create fails."""
    chosen = "0190a1b2-0000-7000-8000-000000000001"
    created = await create(anon, email="imp@example.com", id=chosen)
    assert created.status_code == 201, created.text
    assert created.json()["id"] == chosen
    again = await create(anon, email="imp2@example.com", id=chosen)
    assert again.status_code == 409, again.text
    bad = await create(anon, email="imp3@example.com", id="nope")
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"]["id"]["code"] == "invalid_id"
    assert (await anon.get("/api/admin/users", headers=ADMIN)).json()["total"] == 1


BAD_CREATES: list[tuple[Any, str, str | None]] = [
    ({"email": "weak@example.com", "password": "short"}, "password", "weak_password"),
    ({"email": "weak@example.com", "password": "password123"}, "password", "weak_password"),
    ({"email": "weak@example.com", "password": "weak@example.com"}, "password", None),
    ({"email": "not an email", "password": PASSWORD}, "email", None),
    ({"password": PASSWORD}, "email", "required"),
    ({"email": "weak@example.com", "verified": "yes"}, "verified", "invalid_type"),
    ({"email": "weak@example.com", "nickname": "x"}, "nickname", "unknown_field"),
    ({"email": "weak@example.com", "disabled": True}, "disabled", "read_only"),
    ({"email": "weak@example.com", "password_hash": "x"}, "password_hash", "read_only"),
    ({"email": "weak@example.com", "name": 5}, "name", None),
]


async def test_create_refuses_bad_bodies(anon: httpx.AsyncClient) -> None:
    for body, field, code in BAD_CREATES:
        response = await anon.post("/api/admin/users", json=body, headers=ADMIN)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert field in error["fields"], (body, error)
        if code:
            assert error["fields"][field]["code"] == code, (body, error)
    for body in [[], "x", 1]:
        response = await anon.post("/api/admin/users", json=body, headers=ADMIN)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_body"
    assert (await anon.get("/api/admin/users", headers=ADMIN)).json()["total"] == 0


async def test_create_refuses_a_taken_email(anon: httpx.AsyncClient, alice: Account) -> None:
    for email in [alice.email, alice.email.upper()]:
        response = await create(anon, email=email, password=PASSWORD)
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "email_taken"


async def test_get_a_user(anon: httpx.AsyncClient, alice: Account) -> None:
    got = await anon.get(f"/api/admin/users/{alice.id}", headers=ADMIN)
    assert got.status_code == 200, got.text
    user = got.json()
    assert user["email"] == alice.email
    assert user["verified"] is True
    assert user["active_sessions"] == 1
    assert user["last_sign_in"] is not None
    assert "password_hash" not in user
    for missing in [NOBODY, "nope", "1"]:
        response = await anon.get(f"/api/admin/users/{missing}", headers=ADMIN)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "user_not_found"


async def test_disabling_ends_sign_in(anon: httpx.AsyncClient, alice: Account) -> None:
    patched = await anon.patch(
        f"/api/admin/users/{alice.id}", json={"disabled": True}, headers=ADMIN
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["disabled"] is True
    assert patched.json()["active_sessions"] == 0
    response = await anon.post(
        "/api/auth/sign-in", json={"email": alice.email, "password": PASSWORD}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "account_disabled"
    assert (await anon.get("/api/auth/me", headers=alice.headers)).status_code == 401
    refreshed = await anon.post(
        "/api/auth/refresh", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401

    enabled = await anon.patch(
        f"/api/admin/users/{alice.id}", json={"disabled": False}, headers=ADMIN
    )
    assert enabled.json()["disabled"] is False
    await sign_in(anon, alice.email)


async def test_patch_email_password_verified(anon: httpx.AsyncClient, alice: Account) -> None:
    new = "new horse battery staple"
    patched = await anon.patch(
        f"/api/admin/users/{alice.id}",
        json={"email": "Alice2@Example.com", "password": new, "verified": False},
        headers=ADMIN,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["email"] == "alice2@example.com"
    assert patched.json()["verified"] is False
    assert "password_hash" not in patched.json()
    # A new password ends the sessions.
    assert (await anon.get("/api/auth/me", headers=alice.headers)).status_code == 401
    verified = await anon.patch(
        f"/api/admin/users/{alice.id}", json={"verified": True}, headers=ADMIN
    )
    assert verified.status_code == 200
    await sign_in(anon, "alice2@example.com", new)


BAD_PATCHES: list[tuple[Any, str]] = [
    ({}, "invalid_body"),
    ([], "invalid_body"),
    ({"name": "x"}, "validation_failed"),
    ({"password_hash": "x"}, "validation_failed"),
    ({"disabled": "yes"}, "validation_failed"),
    ({"verified": 1}, "validation_failed"),
    ({"email": "nope"}, "validation_failed"),
    ({"email": None}, "validation_failed"),
    ({"password": "short"}, "validation_failed"),
    ({"password": None}, "validation_failed"),
]


async def test_patch_refuses_bad_bodies(anon: httpx.AsyncClient, alice: Account) -> None:
    for body, code in BAD_PATCHES:
        response = await anon.patch(f"/api/admin/users/{alice.id}", json=body, headers=ADMIN)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"] == code, (body, response.text)
    await sign_in(anon, alice.email)  # unchanged
    assert (await anon.get("/api/auth/me", headers=alice.headers)).status_code == 200


async def test_patch_refuses_the_email_as_password(anon: httpx.AsyncClient, alice: Account) -> None:
    response = await anon.patch(
        f"/api/admin/users/{alice.id}", json={"password": alice.email}, headers=ADMIN
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["fields"]["password"]["code"] == "weak_password"


async def test_patch_refuses_a_taken_email(anon: httpx.AsyncClient, alice: Account) -> None:
    bob = await sign_up(anon, "bob@example.com")
    response = await anon.patch(
        f"/api/admin/users/{bob.id}", json={"email": "ALICE@example.com"}, headers=ADMIN
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "email_taken"
    for missing in [NOBODY, "nope"]:
        response = await anon.patch(
            f"/api/admin/users/{missing}", json={"verified": True}, headers=ADMIN
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "user_not_found"


async def test_delete_a_user(anon: httpx.AsyncClient, alice: Account, app: RunningApp) -> None:
    bob = await sign_up(anon, "bob@example.com")
    deleted = await anon.delete(f"/api/admin/users/{alice.id}", headers=ADMIN)
    assert deleted.status_code == 204, deleted.text
    assert (await anon.get(f"/api/admin/users/{alice.id}", headers=ADMIN)).status_code == 404
    me = await anon.get("/api/auth/me", headers=alice.headers)
    assert me.status_code == 401
    refreshed = await anon.post(
        "/api/auth/refresh", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    sessions = await anon.get(f"/api/admin/users/{alice.id}/sessions", headers=ADMIN)
    assert sessions.status_code == 404
    ended = await app.ctx.db.fetchval(
        "SELECT count(*) FROM baas.sessions WHERE subject = $1 AND revoked IS NULL", alice.id
    )
    assert ended == 0
    again = await anon.delete(f"/api/admin/users/{alice.id}", headers=ADMIN)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "user_not_found"
    # The address is free again; bob is untouched.
    assert (await create(anon, email=alice.email)).status_code == 201
    assert (await anon.get("/api/auth/me", headers=bob.headers)).status_code == 200


async def test_a_referenced_user_stays(anon: httpx.AsyncClient, alice: Account) -> None:
    author = {"type": "relation", "collection": "users", "required": True}
    posts = {"fields": {"author": author}, "rules": {"create": "author = auth.id"}}
    await apply_schema(anon, {"collections": {"posts": posts}})
    post = await anon.post(
        "/api/collections/posts/records", json={"author": alice.id}, headers=alice.headers
    )
    assert post.status_code == 201, post.text
    refused = await anon.delete(f"/api/admin/users/{alice.id}", headers=ADMIN)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "still_referenced"
    # Nothing of the failed delete happened: the account and its session are intact.
    assert (await anon.get("/api/auth/me", headers=alice.headers)).status_code == 200


async def test_sessions_list_and_revoke(anon: httpx.AsyncClient, alice: Account) -> None:
    second = await anon.post(
        "/api/auth/sign-in",
        json={"email": alice.email, "password": PASSWORD},
        headers={"User-Agent": "phone/1.0", "X-Forwarded-For": "198.51.100.4"},
    )
    assert second.status_code == 200
    listed = await anon.get(f"/api/admin/users/{alice.id}/sessions", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert len(items) == 2
    assert items[0]["user_agent"] == "phone/1.0"
    assert items[0]["ip"] == "198.51.100.4"
    revoked = await anon.delete(f"/api/admin/users/{alice.id}/sessions", headers=ADMIN)
    assert revoked.json() == {"revoked": 2}
    assert (await anon.get("/api/auth/me", headers=alice.headers)).status_code == 401
    listed = await anon.get(f"/api/admin/users/{alice.id}/sessions", headers=ADMIN)
    assert listed.json()["items"] == []
    for missing in [NOBODY, "nope"]:
        for method in ("GET", "DELETE"):
            response = await anon.request(
                method, f"/api/admin/users/{missing}/sessions", headers=ADMIN
            )
            assert response.status_code == 404, (method, missing, response.text)
            assert response.json()["error"]["code"] == "user_not_found"


# -- mail outbox -----------------------------------------------------------------------------------


async def test_mail_outbox(anon: httpx.AsyncClient, alice: Account) -> None:
    await sign_up(anon, "bob@example.com")
    everything = await anon.get("/api/admin/mail", headers=ADMIN)
    assert everything.status_code == 200
    assert [m["recipient"] for m in everything.json()["items"]] == [
        "bob@example.com",
        alice.email,
    ]
    only_alice = await mails(anon, "ALICE@example.com")
    assert len(only_alice) == 1
    one = await anon.get(f"/api/admin/mail/{only_alice[0]['id']}", headers=ADMIN)
    assert one.status_code == 200, one.text
    assert one.json() == only_alice[0]
    assert one.json()["template"] == "verify"
    assert "token=" in one.json()["text"]
    limited = await anon.get("/api/admin/mail", params={"limit": 1}, headers=ADMIN)
    assert len(limited.json()["items"]) == 1
    for missing in [NOBODY, "nope"]:
        response = await anon.get(f"/api/admin/mail/{missing}", headers=ADMIN)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "mail_not_found"
    for params in [{"limit": "0"}, {"limit": "x"}, {"recipient": "a" * 321}]:
        response = await anon.get("/api/admin/mail", params=params, headers=ADMIN)
        assert response.status_code == 400, (params, response.text)


# -- runtime settings ------------------------------------------------------------------------------


def by_name(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {s["name"]: s for s in response.json()["items"]}


async def test_settings_show_defaults_and_help(admin: httpx.AsyncClient) -> None:
    settings = by_name(await admin.get("/api/admin/settings"))
    assert list(settings) == [s.name for s in RUNTIME]
    rate = settings["rate.sign_in_ip"]
    assert rate["value"] == rate["default"] == "30/300s"
    assert rate["set"] is False
    assert rate["help"]
    assert settings["auth.password_min_length"]["value"] == 8
    password = settings["smtp.password"]
    assert password == {**password, "value": False, "default": None, "secret": True}


async def test_settings_change_and_reset(admin: httpx.AsyncClient) -> None:
    changed = by_name(
        await admin.patch(
            "/api/admin/settings",
            json={"app.name": "Shop", "rate.sign_in_ip": "5/1m", "auth.anonymous": True},
        )
    )
    assert changed["app.name"]["value"] == "Shop"
    assert changed["app.name"]["set"] is True
    assert changed["rate.sign_in_ip"]["value"] == "5/60s"
    assert by_name(await admin.get("/api/admin/settings"))["app.name"]["value"] == "Shop"
    methods = await admin.get("/api/auth/methods")
    assert methods.json()["anonymous"] is True
    reset = by_name(await admin.patch("/api/admin/settings", json={"app.name": None}))
    assert reset["app.name"]["value"] == "baas"
    assert reset["app.name"]["set"] is False
    assert reset["rate.sign_in_ip"]["value"] == "5/60s"


async def test_settings_report_every_problem_at_once(admin: httpx.AsyncClient) -> None:
    body = {
        "app.name": "ok",
        "auth.password_min_length": 3,
        "auth.anonymous": "yes",
        "smtp.security": "ssl",
        "smtp.port": 70000,
        "auth.link_base": "no scheme",
        "rate.mfa": "fast",
        "mail.from": "x" * 400,
        "no.such.setting": 1,
    }
    response = await admin.patch("/api/admin/settings", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert set(error["fields"]) == set(body) - {"app.name"}
    assert error["fields"]["no.such.setting"]["code"] == "unknown_setting"
    assert error["fields"]["smtp.port"]["code"] == "invalid_value"
    # All or nothing: the valid value was not stored either.
    assert by_name(await admin.get("/api/admin/settings"))["app.name"]["value"] == "baas"


async def test_settings_refuse_other_bodies(admin: httpx.AsyncClient) -> None:
    for body in [[], {}, "x", None, {"x" * 5000: 1}]:
        response = await admin.patch("/api/admin/settings", json=body)
        assert response.status_code == 400, response.text
        assert len(response.text) < 2000


async def test_a_secret_setting_is_never_shown(admin: httpx.AsyncClient, app: RunningApp) -> None:
    secret = "s3cret-smtp-pa55word"
    changed = await admin.patch("/api/admin/settings", json={"smtp.password": secret})
    assert secret not in changed.text
    assert by_name(changed)["smtp.password"]["value"] is True
    shown = await admin.get("/api/admin/settings")
    assert secret not in shown.text
    assert by_name(shown)["smtp.password"] == {
        **by_name(shown)["smtp.password"],
        "value": True,
        "set": True,
    }
    row = await app.ctx.db.fetchrow(
        "SELECT value, sealed FROM baas.settings WHERE name = 'smtp.password'"
    )
    assert row["value"] is None
    assert secret.encode() not in bytes(row["sealed"])
    assert app.ctx.runtime["smtp.password"] == secret  # the server itself can read it
    cleared = by_name(await admin.patch("/api/admin/settings", json={"smtp.password": None}))
    assert cleared["smtp.password"]["value"] is False


# -- signing keys ----------------------------------------------------------------------------------


async def test_signing_keys_rotate(anon: httpx.AsyncClient, alice: Account) -> None:
    before = await anon.get("/api/admin/signing-keys", headers=ADMIN)
    assert before.status_code == 200
    [current] = before.json()["items"]
    assert current["retired"] is None
    assert "private_key" not in current
    rotated = await anon.post("/api/admin/signing-keys/rotate", headers=ADMIN)
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["active_in_s"] > 0
    after = (await anon.get("/api/admin/signing-keys", headers=ADMIN)).json()["items"]
    assert [k["kid"] for k in after] == [current["kid"], rotated.json()["kid"]]
    assert after[0]["retired"] is not None  # retires once the new one is in use
    assert after[1]["retired"] is None
    jwks = (await anon.get("/api/auth/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {current["kid"], rotated.json()["kid"]}
    # Tokens signed before keep working.
    assert (await anon.get("/api/auth/me", headers=alice.headers)).status_code == 200
