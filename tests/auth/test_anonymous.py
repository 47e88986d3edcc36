"""Anonymous users over HTTP: off by default; when on, a user with no credentials who keeps their
id and their records when they later sign up with a password or sign in with a provider."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.auth.conftest import (
    ADMIN,
    PASSWORD,
    Account,
    configure,
    last_link,
    mails,
    oidc_sign_in,
    sign_in,
    token_of,
)
from tests.auth.oidc_provider import EMAIL, OidcProvider
from tests.conftest import apply_schema

NOTES: dict[str, Any] = {
    "collections": {
        "notes": {
            "fields": {
                "text": "text",
                "owner": {"type": "relation", "collection": "users", "required": True},
            },
            "rules": {
                "list": "owner = auth.id",
                "view": "owner = auth.id",
                "create": "body.owner = auth.id",
            },
        }
    }
}


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
async def enabled(anon: httpx.AsyncClient) -> httpx.AsyncClient:
    await configure(anon, auth__anonymous=True)
    return anon


async def anonymous(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/api/auth/anonymous")
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/auth/me", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def write_note(client: httpx.AsyncClient, headers: dict[str, str], owner: str) -> str:
    response = await client.post(
        "/api/collections/notes/records", json={"text": "hi", "owner": owner}, headers=headers
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


async def notes(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    response = await client.get("/api/collections/notes/records", headers=headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def user_count(client: httpx.AsyncClient) -> int:
    response = await client.get("/api/admin/users", headers=ADMIN)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


# -- signing in anonymously ---------------------------------------------------------------------


async def test_anonymous_sign_in_is_off_by_default(anon: httpx.AsyncClient) -> None:
    response = await anon.post("/api/auth/anonymous")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "anonymous_disabled")
    assert (await anon.get("/api/auth/methods")).json()["anonymous"] is False
    assert await user_count(anon) == 0


async def test_anonymous_sign_in_creates_a_user_with_a_session(enabled: httpx.AsyncClient) -> None:
    body = await anonymous(enabled)
    assert body["token_type"] == "Bearer" and body["refresh_token"]
    user = body["user"]
    assert (user["anonymous"], user["email"], user["verified"], user["has_password"]) == (
        True,
        None,
        False,
        False,
    )
    assert (await me(enabled, bearer(body)))["id"] == user["id"]
    sessions = await enabled.get("/api/auth/sessions", headers=bearer(body))
    assert [s["amr"] for s in sessions.json()["items"]] == [["anonymous"]]
    refreshed = await enabled.post(
        "/api/auth/refresh", json={"refresh_token": body["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    other = await anonymous(enabled)
    assert other["user"]["id"] != user["id"]
    assert await user_count(enabled) == 2


async def test_anonymous_sign_in_obeys_a_closed_sign_up(enabled: httpx.AsyncClient) -> None:
    await apply_schema(enabled, {"collections": {"users": {"rules": {"create": None}}}})
    response = await enabled.post("/api/auth/anonymous")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "sign_up_closed")


async def test_an_anonymous_user_owns_records(enabled: httpx.AsyncClient) -> None:
    await apply_schema(enabled, NOTES)
    guest, other = await anonymous(enabled), await anonymous(enabled)
    note = await write_note(enabled, bearer(guest), guest["user"]["id"])
    assert await notes(enabled, bearer(guest)) == [note]
    assert await notes(enabled, bearer(other)) == []
    stolen = await enabled.post(
        "/api/collections/notes/records",
        json={"text": "x", "owner": guest["user"]["id"]},
        headers=bearer(other),
    )
    # another's account is not one `other` may view: as if it did not exist
    assert stolen.status_code == 400, stolen.text
    assert stolen.json()["error"]["fields"]["owner"]["code"] == "relation_not_found"
    assert await notes(enabled, bearer(guest)) == [note]


# -- upgrading with a password -----------------------------------------------------------------


async def test_upgrade_with_verification_sets_the_email_when_confirmed(
    enabled: httpx.AsyncClient,
) -> None:
    await apply_schema(enabled, NOTES)
    guest = await anonymous(enabled)
    user_id = guest["user"]["id"]
    note = await write_note(enabled, bearer(guest), user_id)
    response = await enabled.post(
        "/api/auth/sign-up",
        json={"email": "guest@example.com", "password": PASSWORD},
        headers=bearer(guest),
    )
    assert (response.status_code, response.json()) == (202, {"verification_required": True})
    waiting = await me(enabled, bearer(guest))
    assert (waiting["anonymous"], waiting["email"]) == (True, None)
    refused = await enabled.post(
        "/api/auth/sign-in", json={"email": "guest@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 401, refused.text
    link = await last_link(enabled, "guest@example.com", "verify")
    confirmed = await enabled.post("/api/auth/email-change/confirm", json={"token": token_of(link)})
    assert confirmed.status_code == 200, confirmed.text
    user = await me(enabled, bearer(guest))  # the anonymous session goes on, as the same user
    assert (user["id"], user["anonymous"], user["email"], user["verified"]) == (
        user_id,
        False,
        "guest@example.com",
        True,
    )
    account = await sign_in(enabled, "guest@example.com")
    assert account.id == user_id
    assert await notes(enabled, account.headers) == [note]
    assert await user_count(enabled) == 1


async def test_upgrade_without_verification_sets_the_email_at_once(
    enabled: httpx.AsyncClient,
) -> None:
    await configure(enabled, auth__require_verification=False)
    await apply_schema(enabled, NOTES)
    guest = await anonymous(enabled)
    user_id = guest["user"]["id"]
    note = await write_note(enabled, bearer(guest), user_id)
    response = await enabled.post(
        "/api/auth/sign-up",
        json={"email": "Guest@Example.com", "password": PASSWORD},
        headers=bearer(guest),
    )
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert (user["id"], user["anonymous"], user["email"], user["has_password"]) == (
        user_id,
        False,
        "guest@example.com",
        True,
    )
    assert [m["template"] for m in await mails(enabled, "guest@example.com")] == ["verify"]
    account = await sign_in(enabled, "guest@example.com")
    assert account.id == user_id
    assert await notes(enabled, account.headers) == [note]


async def test_upgrade_to_a_taken_email_without_verification_is_a_409_and_changes_nothing(
    enabled: httpx.AsyncClient, alice: Account
) -> None:
    await configure(enabled, auth__require_verification=False)
    guest = await anonymous(enabled)
    response = await enabled.post(
        "/api/auth/sign-up",
        json={"email": alice.email, "password": "another long password"},
        headers=bearer(guest),
    )
    assert (response.status_code, response.json()["error"]["code"]) == (409, "email_taken")
    user = await me(enabled, bearer(guest))
    assert (user["anonymous"], user["email"], user["has_password"]) == (True, None, False)
    assert (await sign_in(enabled, alice.email)).id == alice.id


async def test_upgrade_to_a_taken_email_with_verification_cannot_take_it(
    enabled: httpx.AsyncClient, alice: Account
) -> None:
    guest = await anonymous(enabled)
    response = await enabled.post(
        "/api/auth/sign-up",
        json={"email": alice.email, "password": "another long password"},
        headers=bearer(guest),
    )
    assert response.status_code == 202, response.text
    link = await last_link(enabled, alice.email, "verify")
    confirmed = await enabled.post("/api/auth/email-change/confirm", json={"token": token_of(link)})
    assert (confirmed.status_code, confirmed.json()["error"]["code"]) == (409, "email_taken")
    assert (await me(enabled, bearer(guest)))["anonymous"] is True
    assert (await sign_in(enabled, alice.email)).id == alice.id


UPGRADE_REFUSALS: list[tuple[dict[str, Any], int, str]] = [
    ({"email": "g@example.com", "password": PASSWORD, "name": "G"}, 400, "invalid_body"),
    ({"email": "g@example.com", "password": "short"}, 400, "validation_failed"),
    ({"email": "not an address", "password": PASSWORD}, 400, "validation_failed"),
    ({"password": PASSWORD}, 400, "validation_failed"),
    ({"email": "g@example.com", "password": PASSWORD, "id": "x"}, 400, "invalid_body"),
]


@pytest.mark.parametrize(("body", "status", "code"), UPGRADE_REFUSALS)
async def test_a_bad_upgrade_is_a_4xx_and_leaves_the_user_anonymous(
    enabled: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    guest = await anonymous(enabled)
    response = await enabled.post("/api/auth/sign-up", json=body, headers=bearer(guest))
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    user = await me(enabled, bearer(guest))
    assert (user["anonymous"], user["email"], user["has_password"]) == (True, None, False)


async def test_a_registered_user_signing_up_again_is_a_409(
    enabled: httpx.AsyncClient, alice: Account
) -> None:
    response = await enabled.post(
        "/api/auth/sign-up",
        json={"email": "second@example.com", "password": PASSWORD},
        headers=alice.headers,
    )
    assert (response.status_code, response.json()["error"]["code"]) == (409, "already_registered")
    assert await user_count(enabled) == 1
    assert (await me(enabled, alice.headers))["email"] == alice.email


async def test_an_upgraded_user_cannot_upgrade_twice(enabled: httpx.AsyncClient) -> None:
    await configure(enabled, auth__require_verification=False)
    guest = await anonymous(enabled)
    first = await enabled.post(
        "/api/auth/sign-up",
        json={"email": "guest@example.com", "password": PASSWORD},
        headers=bearer(guest),
    )
    assert first.status_code == 200, first.text
    again = await enabled.post(
        "/api/auth/sign-up",
        json={"email": "again@example.com", "password": PASSWORD},
        headers=bearer(guest),
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_registered")
    assert (await me(enabled, bearer(guest)))["email"] == "guest@example.com"


# -- upgrading with a provider ------------------------------------------------------------------


async def test_upgrade_with_a_provider_keeps_the_id_and_records(
    enabled: httpx.AsyncClient, idp: OidcProvider
) -> None:
    await configure(enabled, auth__oidc={"acme": idp.setting()})
    await apply_schema(enabled, NOTES)
    guest = await anonymous(enabled)
    user_id = guest["user"]["id"]
    note = await write_note(enabled, bearer(guest), user_id)
    response = await oidc_sign_in(enabled, idp.id_token(), headers=bearer(guest))
    assert response.status_code == 200, response.text
    body = response.json()
    user = body["user"]
    assert (user["id"], user["anonymous"], user["email"], user["verified"]) == (
        user_id,
        False,
        EMAIL,
        True,
    )
    assert await notes(enabled, bearer(body)) == [note]
    again = await oidc_sign_in(enabled, idp.id_token())  # later, on another device
    assert again.json()["user"]["id"] == user_id
    identities = await enabled.get("/api/auth/identities", headers=bearer(body))
    assert [i["provider"] for i in identities.json()["items"]] == ["acme"]
    assert await user_count(enabled) == 1


async def test_upgrade_with_a_provider_whose_email_is_taken_keeps_no_email(
    enabled: httpx.AsyncClient, idp: OidcProvider, alice: Account
) -> None:
    await configure(enabled, auth__oidc={"acme": idp.setting()})
    guest = await anonymous(enabled)
    response = await oidc_sign_in(enabled, idp.id_token(email=alice.email), headers=bearer(guest))
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert (user["id"], user["anonymous"], user["email"]) == (guest["user"]["id"], False, None)
    assert (await sign_in(enabled, alice.email)).id == alice.id


async def test_an_anonymous_user_cannot_take_an_identity_of_another_user(
    enabled: httpx.AsyncClient, idp: OidcProvider
) -> None:
    await configure(enabled, auth__oidc={"acme": idp.setting()})
    owner = await oidc_sign_in(enabled, idp.id_token())
    guest = await anonymous(enabled)
    response = await oidc_sign_in(enabled, idp.id_token(), headers=bearer(guest))
    assert (response.status_code, response.json()["error"]["code"]) == (409, "identity_taken")
    assert (await me(enabled, bearer(guest)))["anonymous"] is True
    assert owner.json()["user"]["id"] != guest["user"]["id"]
