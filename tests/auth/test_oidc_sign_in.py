"""Signing in with an OpenID Connect ID token over HTTP, against a real local provider: accounts
are keyed by (provider, subject), linked by verified email only, and a never-verified account that
a provider's verified address claims keeps no way in for whoever registered it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pyotp
import pytest

from tests.auth.conftest import (
    ADMIN,
    PASSWORD,
    Account,
    configure,
    last_link,
    oidc_sign_in,
    sign_in,
    sign_up,
    token_of,
)
from tests.auth.oidc_provider import EMAIL, NONCE, SUBJECT, OidcProvider
from tests.conftest import RunningApp

NOW = int(time.time())


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture(scope="module")
async def shared(
    module_app: RunningApp, _module_idp: OidcProvider
) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials on the module's app, "acme" configured: for scenario rows
    that create nothing (a database per row would dominate the run time)."""
    transport = httpx.ASGITransport(app=module_app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await configure(client, auth__oidc={"acme": _module_idp.setting()})
        yield client


@pytest.fixture
async def acme(anon: httpx.AsyncClient, idp: OidcProvider) -> OidcProvider:
    """The local provider, configured as "acme"."""
    await configure(anon, auth__oidc={"acme": idp.setting()})
    return idp


async def signed_in(client: httpx.AsyncClient, id_token: str, **kw: Any) -> dict[str, Any]:
    response = await oidc_sign_in(client, id_token, **kw)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def users(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/api/admin/users", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/auth/me", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def identities(client: httpx.AsyncClient, headers: dict[str, str]) -> list[tuple[str, Any]]:
    response = await client.get("/api/auth/identities", headers=headers)
    assert response.status_code == 200, response.text
    return [(i["provider"], i["email"]) for i in response.json()["items"]]


# -- new accounts, returning accounts ------------------------------------------------------------


async def test_a_new_subject_creates_a_verified_user_and_signs_in(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    body = await signed_in(anon, acme.id_token(name="Ann Example"))
    assert body["token_type"] == "Bearer" and body["refresh_token"]
    user = body["user"]
    assert (user["email"], user["verified"], user["anonymous"]) == (EMAIL, True, False)
    assert (user["name"], user["has_password"], user["providers"]) == (
        "Ann Example",
        False,
        ["acme"],
    )
    assert (await me(anon, bearer(body)))["id"] == user["id"]
    assert [u["id"] for u in await users(anon)] == [user["id"]]
    assert await identities(anon, bearer(body)) == [("acme", EMAIL)]
    sessions = await anon.get("/api/auth/sessions", headers=bearer(body))
    assert [s["amr"] for s in sessions.json()["items"]] == [["oidc"]]


async def test_the_same_subject_is_the_same_user_whatever_its_email(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    first = await signed_in(anon, acme.id_token())
    moved = await signed_in(anon, acme.id_token(email="ann@elsewhere.example"))
    unverified = await signed_in(anon, acme.id_token(email="x@example.com", email_verified=False))
    no_email = await signed_in(anon, acme.id_token(email=None, email_verified=None))
    ids = {b["user"]["id"] for b in (first, moved, unverified, no_email)}
    assert ids == {first["user"]["id"]}
    assert len(await users(anon)) == 1
    # The account keeps its address; the identity remembers the provider's latest verified one.
    assert moved["user"]["email"] == EMAIL
    assert await identities(anon, bearer(moved)) == [("acme", "ann@elsewhere.example")]


async def test_another_subject_is_another_user(anon: httpx.AsyncClient, acme: OidcProvider) -> None:
    ann = await signed_in(anon, acme.id_token())
    bob = await signed_in(anon, acme.id_token(sub="bob-subject", email="bob@example.com"))
    anonymous = await signed_in(anon, acme.id_token(sub="no-email", email=None))
    assert len({ann["user"]["id"], bob["user"]["id"], anonymous["user"]["id"]}) == 3
    assert (anonymous["user"]["email"], anonymous["user"]["verified"]) == (None, False)


async def test_concurrent_first_sign_ins_of_one_subject_make_one_user(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    """A double tap on "Sign in with ...": every request signs in, to the one user created."""
    for token in (acme.id_token(email=None), acme.id_token(sub="with-email")):
        answers = await asyncio.gather(*(oidc_sign_in(anon, token) for _ in range(6)))
        assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
        assert len({a.json()["user"]["id"] for a in answers}) == 1
    assert len(await users(anon)) == 2


# -- refusals: nothing is created ----------------------------------------------------------------

REFUSED = [
    ("wrong audience", {"aud": "com.other.app"}, NONCE, "invalid_id_token"),
    ("expired", {"exp": NOW - 3600, "iat": NOW - 7200}, NONCE, "invalid_id_token"),
    ("wrong issuer", {"iss": "https://evil.example"}, NONCE, "invalid_id_token"),
    ("bad nonce", {}, "another-nonce", "invalid_id_token"),
    ("missing nonce", {}, None, "invalid_id_token"),
    ("unverified email", {"email_verified": False}, NONCE, "email_not_verified"),
    ("apple's unverified", {"email_verified": "false"}, NONCE, "email_not_verified"),
]


@pytest.mark.parametrize(
    ("claims", "nonce", "code"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
async def test_a_refused_token_is_a_401_and_creates_nobody(
    shared: httpx.AsyncClient, idp: OidcProvider, claims: dict[str, Any], nonce: Any, code: str
) -> None:
    response = await oidc_sign_in(shared, idp.id_token(**claims), nonce=nonce)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == code
    assert await users(shared) == []


async def test_a_tampered_signature_is_refused(
    shared: httpx.AsyncClient, idp: OidcProvider
) -> None:
    header, _, signature = idp.id_token().split(".")
    forged = idp.id_token(sub="someone-else").split(".")[1]
    response = await oidc_sign_in(shared, f"{header}.{forged}.{signature}")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_id_token")
    assert await users(shared) == []


BAD_BODIES: list[tuple[Any, str]] = [
    ({}, "invalid_body"),
    ([], "invalid_body"),
    ({"id_token": 12}, "invalid_body"),
    ({"id_token": "x.y.z", "nonce": 5}, "invalid_parameter"),
    ({"id_token": "x.y.z", "nonce": ""}, "invalid_parameter"),
    ({"id_token": "x.y.z", "nonce": NONCE}, "invalid_id_token"),
    ({"id_token": "", "nonce": NONCE}, "invalid_id_token"),
]


@pytest.mark.parametrize(("body", "code"), BAD_BODIES)
async def test_a_malformed_request_is_a_4xx_with_a_stable_code(
    shared: httpx.AsyncClient, body: Any, code: str
) -> None:
    response = await shared.post("/api/auth/oidc/acme", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"] == code


async def test_a_provider_that_is_not_configured_is_a_404(
    anon: httpx.AsyncClient, idp: OidcProvider
) -> None:
    token = idp.id_token()
    for provider in ("acme", "google", "nope-name_that-is-far-too-long-for-a-provider-name"):
        response = await oidc_sign_in(anon, token, provider=provider)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "provider_not_configured"
    await configure(anon, auth__oidc={"acme": idp.setting()})
    response = await oidc_sign_in(anon, token, provider="other")
    assert (response.status_code, response.json()["error"]["code"]) == (
        404,
        "provider_not_configured",
    )
    assert await users(anon) == []


async def test_sign_up_closed_refuses_new_subjects_but_not_known_ones(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    known = await signed_in(anon, acme.id_token())
    await anon.post(
        "/api/admin/schema/apply",
        json={"document": {"collections": {"users": {"rules": {"create": None}}}}},
        headers=ADMIN,
    )
    response = await oidc_sign_in(anon, acme.id_token(sub="new", email="new@example.com"))
    assert (response.status_code, response.json()["error"]["code"]) == (403, "sign_up_closed")
    again = await signed_in(anon, acme.id_token())
    assert again["user"]["id"] == known["user"]["id"]


async def test_a_disabled_user_cannot_sign_in_with_the_provider(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    body = await signed_in(anon, acme.id_token())
    disabled = await anon.patch(
        f"/api/admin/users/{body['user']['id']}", json={"disabled": True}, headers=ADMIN
    )
    assert disabled.status_code == 200, disabled.text
    response = await oidc_sign_in(anon, acme.id_token())
    assert (response.status_code, response.json()["error"]["code"]) == (403, "account_disabled")


async def test_a_disabled_account_is_not_linked_by_email(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    victim = await anon.post(
        "/api/admin/users",
        json={"email": "dora@example.com", "password": PASSWORD},
        headers=ADMIN,
    )
    assert victim.status_code == 201, victim.text
    user_id = victim.json()["id"]
    await anon.patch(f"/api/admin/users/{user_id}", json={"disabled": True}, headers=ADMIN)
    token = acme.id_token(sub="dora-at-acme", email="dora@example.com")
    response = await oidc_sign_in(anon, token)
    assert (response.status_code, response.json()["error"]["code"]) == (403, "account_disabled")
    user = (await anon.get(f"/api/admin/users/{user_id}", headers=ADMIN)).json()
    assert (user["has_password"], user["verified"]) == (True, False)  # nothing changed on it


# -- linking by verified email -------------------------------------------------------------------


async def test_a_verified_password_account_is_linked_and_keeps_its_password(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    ann = await sign_up(anon, EMAIL)
    body = await signed_in(anon, acme.id_token())
    assert body["user"]["id"] == ann.id
    assert (body["user"]["has_password"], body["user"]["providers"]) == (True, ["acme"])
    assert (await sign_in(anon, EMAIL)).id == ann.id
    assert (await me(anon, ann.headers))["id"] == ann.id  # its sessions go on
    assert len(await users(anon)) == 1


async def test_an_unverified_provider_email_never_links_to_an_account(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    ann = await sign_up(anon, EMAIL)
    response = await oidc_sign_in(anon, acme.id_token(email_verified=False))
    assert (response.status_code, response.json()["error"]["code"]) == (401, "email_not_verified")
    assert (await me(anon, ann.headers))["providers"] == []


async def pre_register(anon: httpx.AsyncClient, email: str = EMAIL) -> dict[str, Any]:
    """An attacker signs up with somebody else's address (never verified) and gets a session."""
    await configure(anon, auth__require_verification=False)
    response = await anon.post("/api/auth/sign-up", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_never_verified_account_loses_its_password_and_sessions_to_the_owner(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    attacker = await pre_register(anon)
    assert attacker["user"]["verified"] is False
    owner = await signed_in(anon, acme.id_token())
    assert owner["user"]["id"] == attacker["user"]["id"]
    assert (owner["user"]["verified"], owner["user"]["has_password"]) == (True, False)
    gone = await anon.get("/api/auth/me", headers=bearer(attacker))
    assert (gone.status_code, gone.json()["error"]["code"]) == (401, "session_ended")
    refresh = await anon.post(
        "/api/auth/refresh", json={"refresh_token": attacker["refresh_token"]}
    )
    assert refresh.status_code == 401, refresh.text
    password = await anon.post("/api/auth/sign-in", json={"email": EMAIL, "password": PASSWORD})
    assert (password.status_code, password.json()["error"]["code"]) == (401, "invalid_credentials")
    assert (await me(anon, bearer(owner)))["id"] == owner["user"]["id"]


async def test_a_never_verified_account_keeps_no_identity_the_attacker_linked(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    """The attacker links their own provider account while signed in; it must not outlive the
    owner's claim, or it would sign the attacker into the owner's account."""
    attacker = await pre_register(anon)
    linked = await oidc_sign_in(
        anon,
        acme.id_token(sub="attacker-subject", email="mallory@example.com"),
        headers=bearer(attacker),
    )
    assert linked.status_code == 200, linked.text
    owner = await signed_in(anon, acme.id_token())
    assert owner["user"]["id"] == attacker["user"]["id"]
    assert await identities(anon, bearer(owner)) == [("acme", EMAIL)]
    again = await signed_in(
        anon, acme.id_token(sub="attacker-subject", email="mallory@example.com")
    )
    assert again["user"]["id"] != owner["user"]["id"]


async def test_a_never_verified_account_keeps_no_second_factor_the_attacker_enrolled(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    """A factor the attacker enrolled would lock the owner out (or let the attacker in later)."""
    attacker = await pre_register(anon)
    enrolled = await anon.post("/api/auth/mfa/totp", headers=bearer(attacker))
    assert enrolled.status_code == 200, enrolled.text
    code = pyotp.TOTP(enrolled.json()["secret"]).now()
    confirmed = await anon.post(
        "/api/auth/mfa/totp/confirm", json={"code": code}, headers=bearer(attacker)
    )
    assert confirmed.status_code == 200, confirmed.text
    owner = await signed_in(anon, acme.id_token())
    assert "access_token" in owner, owner
    assert (owner["user"]["id"], owner["user"]["mfa_enabled"]) == (attacker["user"]["id"], False)


async def test_a_never_verified_account_keeps_no_email_change_the_attacker_asked_for(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    """An email-change link sent to the attacker's own address must die with their access."""
    attacker = await pre_register(anon)
    asked = await anon.post(
        "/api/auth/email-change",
        json={"email": "mallory@example.com", "password": PASSWORD},
        headers=bearer(attacker),
    )
    assert asked.status_code == 202, asked.text
    link = await last_link(anon, "mallory@example.com", "email_change")
    owner = await signed_in(anon, acme.id_token())
    changed = await anon.post("/api/auth/email-change/confirm", json={"token": token_of(link)})
    assert (changed.status_code, changed.json()["error"]["code"]) == (400, "invalid_token")
    assert (await me(anon, bearer(owner)))["email"] == EMAIL


async def test_a_never_verified_account_waiting_for_verification_is_claimed_too(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    """With verification required the squatter never had a session; the owner still gets in
    and the squatter's password stops working (it no longer says "verify first")."""
    squat = await anon.post("/api/auth/sign-up", json={"email": EMAIL, "password": PASSWORD})
    assert squat.status_code == 202, squat.text
    owner = await signed_in(anon, acme.id_token())
    assert owner["user"]["verified"] is True
    password = await anon.post("/api/auth/sign-in", json={"email": EMAIL, "password": PASSWORD})
    assert (password.status_code, password.json()["error"]["code"]) == (401, "invalid_credentials")


# -- a signed-in caller links identities to themselves -------------------------------------------


async def test_a_signed_in_user_links_identities_of_two_providers(
    anon: httpx.AsyncClient, idp: OidcProvider, alice: Account
) -> None:
    await configure(anon, auth__oidc={"acme": idp.setting(), "globex": idp.setting()})
    for provider in ("acme", "globex"):
        token = idp.id_token(sub=f"alice-at-{provider}", email=f"alice@{provider}.example")
        body = await signed_in(anon, token, provider=provider, headers=alice.headers)
        assert body["user"]["id"] == alice.id
    assert await identities(anon, alice.headers) == [
        ("acme", "alice@acme.example"),
        ("globex", "alice@globex.example"),
    ]
    user = await me(anon, alice.headers)
    assert (user["email"], user["providers"]) == ("alice@example.com", ["acme", "globex"])
    token = idp.id_token(sub="alice-at-globex", email=None)
    assert (await signed_in(anon, token, provider="globex"))["user"]["id"] == alice.id
    assert (await sign_in(anon, alice.email)).id == alice.id


async def test_linking_an_identity_of_another_user_is_a_409(
    anon: httpx.AsyncClient, acme: OidcProvider, alice: Account
) -> None:
    ann = await signed_in(anon, acme.id_token())
    response = await oidc_sign_in(anon, acme.id_token(), headers=alice.headers)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "identity_taken")
    assert await identities(anon, alice.headers) == []
    assert await identities(anon, bearer(ann)) == [("acme", EMAIL)]


async def test_linking_the_same_identity_again_signs_in(
    anon: httpx.AsyncClient, acme: OidcProvider, alice: Account
) -> None:
    token = acme.id_token(sub="alice-sub", email="alice@example.com")
    for _ in range(2):
        body = await signed_in(anon, token, headers=alice.headers)
        assert body["user"]["id"] == alice.id
    assert await identities(anon, alice.headers) == [("acme", "alice@example.com")]


async def test_a_second_identity_of_the_same_provider_can_be_linked(
    anon: httpx.AsyncClient, acme: OidcProvider, alice: Account
) -> None:
    for sub in ("work", "home"):
        await signed_in(anon, acme.id_token(sub=sub, email=None), headers=alice.headers)
    assert [p for p, _ in await identities(anon, alice.headers)] == ["acme", "acme"]


async def test_identities_need_a_signed_in_user(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/api/auth/identities")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")


async def test_identities_list_shows_no_subject(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    body = await signed_in(anon, acme.id_token())
    response = await anon.get("/api/auth/identities", headers=bearer(body))
    (item,) = response.json()["items"]
    assert set(item) == {"provider", "email", "created", "last_sign_in"}
    assert SUBJECT not in response.text
