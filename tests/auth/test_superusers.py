"""Superusers: the first-run setup token, setup, sign-in, what their tokens may do, and managing
them through the admin API (never yourself, never the last one)."""

from __future__ import annotations

import asyncio
import stat
from typing import Any

import httpx
import pytest

from baas.config import Settings
from tests.auth.conftest import ADMIN, PASSWORD, Account, configure
from tests.conftest import apply_schema

ROOT = "root@example.com"
NOTES = {"collections": {"notes": {"fields": {"text": "text"}}}}  # no rules: admins only


def token_file(settings: Settings) -> Any:
    return settings.data_dir / "setup-token"


def setup_token(settings: Settings) -> str:
    return token_file(settings).read_text().strip()


async def set_up(
    client: httpx.AsyncClient, token: str, email: str = ROOT, password: str = PASSWORD
) -> httpx.Response:
    body = {"token": token, "email": email, "password": password}
    return await client.post("/api/admin/setup", json=body)


async def superuser_sign_in(
    client: httpx.AsyncClient, email: str = ROOT, password: str = PASSWORD
) -> httpx.Response:
    body = {"email": email, "password": password}
    return await client.post("/api/admin/auth/sign-in", json=body)


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
async def root(anon: httpx.AsyncClient, settings: Settings) -> dict[str, Any]:
    """The first superuser, created through setup: their sign-in answer."""
    response = await set_up(anon, setup_token(settings))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


# -- first run -------------------------------------------------------------------------------------


async def test_the_setup_token_is_private(
    anon: httpx.AsyncClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    path = token_file(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = setup_token(settings)
    assert len(token) >= 32
    logged = " ".join(r.getMessage() for r in caplog.get_records("setup"))
    assert str(path) in logged
    assert token not in logged


async def test_setup_with_a_wrong_token(anon: httpx.AsyncClient, settings: Settings) -> None:
    token = setup_token(settings)
    for wrong in ["x" * 43, token[:-2] + "xx", "short", None, 5]:
        response = await anon.post(
            "/api/admin/setup", json={"token": wrong, "email": ROOT, "password": PASSWORD}
        )
        assert response.status_code == 400, (wrong, response.text)
        assert response.json()["error"]["code"] == "invalid_token"
    weak = await set_up(anon, token, password="password")  # refused before the token is spent
    assert weak.status_code == 400
    assert weak.json()["error"]["fields"]["password"]["code"] == "weak_password"
    bad_email = await set_up(anon, token, email="root")
    assert bad_email.status_code == 400
    assert (await anon.get("/api/admin/superusers", headers=ADMIN)).json()["items"] == []
    assert token_file(settings).exists()
    assert (await set_up(anon, token)).status_code == 201


async def test_setup_creates_the_first_superuser(
    anon: httpx.AsyncClient, settings: Settings
) -> None:
    token = setup_token(settings)
    response = await set_up(anon, token, email=" Root@Example.com ")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["access_token"]
    assert body["refresh_token"]
    assert body["superuser"]["email"] == ROOT
    assert "password_hash" not in body["superuser"]
    assert not token_file(settings).exists()
    again = await set_up(anon, token, email="other@example.com")
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "setup_done"
    listed = await anon.get("/api/admin/superusers", headers=bearer(body))
    assert [s["email"] for s in listed.json()["items"]] == [ROOT]


async def test_setup_races_create_one_superuser(
    anon: httpx.AsyncClient, settings: Settings
) -> None:
    token = setup_token(settings)
    answers = await asyncio.gather(
        *(set_up(anon, token, email=f"root{n}@example.com") for n in range(4))
    )
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    listed = await anon.get("/api/admin/superusers", headers=ADMIN)
    assert len(listed.json()["items"]) == 1


async def test_setup_guesses_are_rate_limited(anon: httpx.AsyncClient, settings: Settings) -> None:
    await configure(anon, rate__sign_in_ip="3/1m")
    for _ in range(3):
        assert (await set_up(anon, "x" * 43)).status_code == 400
    limited = await set_up(anon, setup_token(settings))
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"


async def test_a_superuser_made_otherwise_ends_setup(
    anon: httpx.AsyncClient, settings: Settings
) -> None:
    token = setup_token(settings)
    made = await anon.post(
        "/api/admin/superusers", json={"email": ROOT, "password": PASSWORD}, headers=ADMIN
    )
    assert made.status_code == 201, made.text
    assert not (settings.data_dir / "setup-token").exists()  # the file goes with the setup
    response = await set_up(anon, token, email="late@example.com")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "setup_done"


# -- sign-in and what a superuser token may do -----------------------------------------------------


async def test_superuser_sign_in(anon: httpx.AsyncClient, root: dict[str, Any]) -> None:
    response = await superuser_sign_in(anon, email="ROOT@example.com")
    assert response.status_code == 200, response.text
    assert response.json()["superuser"]["id"] == root["superuser"]["id"]
    assert response.json()["superuser"]["last_sign_in"] is not None
    for email, password in [(ROOT, "wrong password here"), ("nobody@example.com", PASSWORD)]:
        wrong = await superuser_sign_in(anon, email, password)
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_credentials"
    # A superuser is not a user, and a user is not a superuser.
    as_user = await anon.post("/api/auth/sign-in", json={"email": ROOT, "password": PASSWORD})
    assert as_user.status_code == 401


async def test_a_user_cannot_sign_in_as_superuser(anon: httpx.AsyncClient, alice: Account) -> None:
    response = await superuser_sign_in(anon, alice.email)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


async def test_superuser_sign_in_is_rate_limited(
    anon: httpx.AsyncClient, root: dict[str, Any]
) -> None:
    await configure(anon, rate__sign_in_account="2/1m", rate__sign_in_ip="off")
    for _ in range(2):
        assert (await superuser_sign_in(anon, password="wrong password here")).status_code == 401
    limited = await superuser_sign_in(anon)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1


async def test_a_superuser_token_is_admin(
    anon: httpx.AsyncClient, root: dict[str, Any], alice: Account
) -> None:
    su = bearer(root)
    assert (await anon.get("/api/admin/users", headers=su)).status_code == 200
    applied = await anon.post("/api/admin/schema/apply", json={"document": NOTES}, headers=su)
    assert applied.status_code == 200, applied.text
    created = await anon.post("/api/collections/notes/records", json={"text": "t"}, headers=su)
    assert created.status_code == 201, created.text
    listed = await anon.get("/api/collections/notes/records", headers=su)
    assert [n["text"] for n in listed.json()["items"]] == ["t"]
    # Rules do not bind it: every user is listed, not just "id = auth.id".
    bob = await anon.post("/api/admin/users", json={"email": "bob@example.com"}, headers=su)
    assert bob.status_code == 201
    users = await anon.get("/api/collections/users/records", headers=su)
    assert sorted(u["id"] for u in users.json()["items"]) == sorted([alice.id, bob.json()["id"]])
    got = await anon.get(f"/api/collections/users/records/{alice.id}", headers=su)
    assert got.status_code == 200
    assert "password_hash" not in got.json()
    me = await anon.get("/api/auth/me", headers=su)
    assert me.status_code == 200, me.text
    assert (me.json()["role"], me.json()["id"]) == ("superuser", root["superuser"]["id"])
    assert "password_hash" not in me.json()


async def test_a_user_token_is_not(anon: httpx.AsyncClient, alice: Account) -> None:
    await apply_schema(anon, NOTES)
    for path in ["/api/admin/users", "/api/admin/superusers", "/api/admin/collections"]:
        response = await anon.get(path, headers=alice.headers)
        assert response.status_code == 403, (path, response.text)
    response = await anon.get("/api/collections/notes/records", headers=alice.headers)
    assert response.status_code == 403
    users = await anon.get("/api/collections/users/records", headers=alice.headers)
    assert [u["id"] for u in users.json()["items"]] == [alice.id]


# -- managing superusers ---------------------------------------------------------------------------


async def test_superusers_list_and_create(anon: httpx.AsyncClient, root: dict[str, Any]) -> None:
    su = bearer(root)
    made = await anon.post(
        "/api/admin/superusers", json={"email": "Two@Example.com", "password": PASSWORD}, headers=su
    )
    assert made.status_code == 201, made.text
    assert made.json()["email"] == "two@example.com"
    assert "password_hash" not in made.json()
    listed = await anon.get("/api/admin/superusers", headers=su)
    assert [s["email"] for s in listed.json()["items"]] == [ROOT, "two@example.com"]
    assert all("password_hash" not in s for s in listed.json()["items"])
    assert (await superuser_sign_in(anon, "two@example.com")).status_code == 200

    bad: list[tuple[Any, str]] = [
        ({"email": "two@example.com", "password": PASSWORD}, "email_taken"),
        ({"email": "three@example.com", "password": "short"}, "validation_failed"),
        ({"email": "three@example.com"}, "validation_failed"),
        ({"email": "three", "password": PASSWORD}, "validation_failed"),
        ({"password": PASSWORD}, "validation_failed"),
        ([], "invalid_body"),
    ]
    for body, code in bad:
        response = await anon.post("/api/admin/superusers", json=body, headers=su)
        assert response.status_code in (400, 409), (body, response.text)
        assert response.json()["error"]["code"] == code, (body, response.text)
    assert len((await anon.get("/api/admin/superusers", headers=su)).json()["items"]) == 2


async def test_superusers_delete(anon: httpx.AsyncClient, root: dict[str, Any]) -> None:
    su, root_id = bearer(root), root["superuser"]["id"]
    made = await anon.post(
        "/api/admin/superusers", json={"email": "two@example.com", "password": PASSWORD}, headers=su
    )
    two_id = made.json()["id"]
    two = (await superuser_sign_in(anon, "two@example.com")).json()

    yourself = await anon.delete(f"/api/admin/superusers/{root_id}", headers=su)
    assert yourself.status_code == 403
    assert yourself.json()["error"]["code"] == "cannot_delete_self"
    for missing in ["0190a1b2-0000-7000-8000-000000000000", "nope"]:
        response = await anon.delete(f"/api/admin/superusers/{missing}", headers=su)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "superuser_not_found"

    gone = await anon.delete(f"/api/admin/superusers/{two_id}", headers=su)
    assert gone.status_code == 204, gone.text
    assert (await anon.get("/api/admin/users", headers=bearer(two))).status_code == 401
    assert (await superuser_sign_in(anon, "two@example.com")).status_code == 401
    refreshed = await anon.post("/api/auth/refresh", json={"refresh_token": two["refresh_token"]})
    assert refreshed.status_code == 401

    last = await anon.delete(f"/api/admin/superusers/{root_id}", headers=ADMIN)
    assert last.status_code == 409
    assert last.json()["error"]["code"] == "last_superuser"
    assert (await anon.get("/api/admin/users", headers=su)).status_code == 200
