"""Email addresses: one strict check (`baas.schema.emails.email_address`) at every door an
address comes in by: sign-up (also an anonymous user's), sign-in, reset and verification
requests, email change, superuser sign-in and setup, the admin API, provider addresses, and
`email` fields of collections; and the one stored form (lower case, ASCII domain)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from baas.schema.emails import InvalidEmail, email_address
from baas.schema.fields import FieldValueError, parse_value
from baas.schema.models import Field
from tests.auth.conftest import (
    ADMIN,
    PASSWORD,
    Account,
    configure,
    last_link,
    oidc_sign_in,
    sign_in,
    token_of,
)
from tests.auth.oidc_provider import OidcProvider

VALID = [
    ("ann@example.com", "ann@example.com"),
    ("Ann.Lee+tag@Example.COM", "Ann.Lee+tag@example.com"),
    ("o'brien!#$%&*/=?^_`{|}~-@mail.example.org", "o'brien!#$%&*/=?^_`{|}~-@mail.example.org"),
    ("a@b.co", "a@b.co"),
    ("x" * 64 + "@example.com", "x" * 64 + "@example.com"),
    ("ann@bücher.de", "ann@xn--bcher-kva.de"),
    ("ann@BÜCHER.de", "ann@xn--bcher-kva.de"),
    ("ann@xn--bcher-kva.de", "ann@xn--bcher-kva.de"),
    ("ann@sub-1.example-2.com", "ann@sub-1.example-2.com"),
]

INVALID = {
    "": "empty",
    "ann": "exactly one @",
    "ann@@example.com": "exactly one @",
    "a@b@example.com": "exactly one @",
    "@example.com": "nothing before the @",
    "ann@": "nothing after the @",
    "ann@localhost": "needs a dot",
    "ann@example": "needs a dot",
    "ann@example.com.": "not a valid host name",
    "ann@.example.com": "not a valid host name",
    "ann@exa_mple.com": "not a valid host name",
    "ann@-example.com": "not a valid host name",
    "ann@example-.com": "not a valid host name",
    "ann@xn--zz.com": "not a valid host name",
    "ann@☃.net": "not a valid host name",
    "ann@" + "a" * 64 + ".com": "not a valid host name",
    "ann@10.0.0.1": "a number",
    "x" * 65 + "@example.com": "64 bytes",
    ".ann@example.com": "single dots",
    "ann.@example.com": "single dots",
    "an..n@example.com": "single dots",
    '"ann"@example.com': "single dots",
    "ünï@example.com": "single dots",
    "ann lee@example.com": "space or a control character",
    " ann@example.com": "space or a control character",
    "ann@exam\tple.com": "space or a control character",
    "ann@example.com\x00": "space or a control character",
    "ann\u200b@example.com": "space or a control character",
    "ann@example.com\n": "space or a control character",
    "a@" + ("b" * 60 + ".") * 5 + "com": "longer than 254",
    "a@" + ("ü" * 10 + ".") * 20 + "com": "longer than 254",  # 225 characters, 305 in ASCII
    "a" * 300: "longer than 254",
}


@pytest.mark.parametrize(("text", "stored"), VALID)
def test_addresses_that_pass(text: str, stored: str) -> None:
    assert email_address(text) == stored


@pytest.mark.parametrize(("text", "problem"), INVALID.items(), ids=[repr(t)[:40] for t in INVALID])
def test_addresses_that_do_not_pass_say_why_and_what_to_send(text: str, problem: str) -> None:
    with pytest.raises(InvalidEmail) as raised:
        email_address(text)
    assert problem in str(raised.value)
    assert "name@example.com" in str(raised.value)


@pytest.mark.parametrize(
    "text", [t for t in INVALID if t and "\x00" not in t], ids=lambda t: repr(t)[:40]
)
def test_email_fields_of_collections_use_the_same_check(text: str) -> None:
    """(A NUL is refused first, like in any text field: invalid_value.)"""
    field = Field(name="contact", type="email")
    with pytest.raises(FieldValueError) as raised:
        parse_value(field, text)
    assert raised.value.code == "invalid_email"
    with pytest.raises(InvalidEmail) as same:
        email_address(text)
    assert raised.value.message == str(same.value)


def test_email_fields_keep_the_value_as_sent() -> None:
    field = Field(name="contact", type="email")
    assert parse_value(field, "Ann@Bücher.de") == "Ann@Bücher.de"
    assert parse_value(field, "") == ""  # an optional field holds "" like any text field
    with pytest.raises(FieldValueError):
        parse_value(Field(name="contact", type="email", required=True), "")


# -- every door, over HTTP ------------------------------------------------------------------------

BAD = ["", "   ", "ann", "ann@localhost", "ann@@example.com", "ann lee@example.com", "a" * 300]


def _invalid_email(response: httpx.Response) -> str:
    """The field message of a 400 validation_failed on `email`."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed", error
    assert error["fields"]["email"]["code"] == "invalid_email", error
    return str(error["fields"]["email"]["message"])


async def _user_count(client: httpx.AsyncClient) -> int:
    response = await client.get("/api/admin/users", headers=ADMIN)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


async def test_sign_up_and_sign_in_refuse_a_bad_address(anon: httpx.AsyncClient) -> None:
    for email in BAD:
        body = {"email": email, "password": PASSWORD}
        assert "name@example.com" in _invalid_email(await anon.post("/api/auth/sign-up", json=body))
        _invalid_email(await anon.post("/api/auth/sign-in", json=body))
        _invalid_email(await anon.post("/api/admin/auth/sign-in", json=body))
    assert await _user_count(anon) == 0


async def test_an_anonymous_user_signing_up_with_a_bad_address_is_a_400(
    anon: httpx.AsyncClient,
) -> None:
    await configure(anon, auth__anonymous=True)
    guest = (await anon.post("/api/auth/anonymous")).json()
    headers = {"Authorization": f"Bearer {guest['access_token']}"}
    for email in BAD:
        body = {"email": email, "password": PASSWORD}
        _invalid_email(await anon.post("/api/auth/sign-up", json=body, headers=headers))
    me = (await anon.get("/api/auth/me", headers=headers)).json()
    assert (me["anonymous"], me["email"], me["has_password"]) == (True, None, False)


async def test_link_requests_refuse_a_bad_address(anon: httpx.AsyncClient, alice: Account) -> None:
    for email in BAD:
        _invalid_email(await anon.post("/api/auth/password-reset", json={"email": email}))
        _invalid_email(await anon.post("/api/auth/verification", json={"email": email}))
        change = {"email": email, "password": alice.password}
        _invalid_email(
            await anon.post("/api/auth/email-change", json=change, headers=alice.headers)
        )
    me = (await anon.get("/api/auth/me", headers=alice.headers)).json()
    assert me["email"] == alice.email


async def test_the_admin_api_refuses_a_bad_address(anon: httpx.AsyncClient, alice: Account) -> None:
    for email in BAD:
        body = {"email": email, "password": PASSWORD}
        _invalid_email(await anon.post("/api/admin/users", json=body, headers=ADMIN))
        _invalid_email(await anon.post("/api/admin/superusers", json=body, headers=ADMIN))
        _invalid_email(
            await anon.patch(f"/api/admin/users/{alice.id}", json={"email": email}, headers=ADMIN)
        )
        setup = {"token": "x" * 43, "email": email, "password": PASSWORD}
        _invalid_email(await anon.post("/api/admin/setup", json=setup))
    assert await _user_count(anon) == 1
    superusers = (await anon.get("/api/admin/superusers", headers=ADMIN)).json()["items"]
    assert superusers == []


async def test_a_missing_or_non_text_address_is_named(anon: httpx.AsyncClient) -> None:
    for body, code in (
        ({}, "required"),
        ({"email": None}, "required"),
        ({"email": 7}, "invalid_type"),
    ):
        response = await anon.post("/api/auth/sign-up", json={**body, "password": PASSWORD})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["fields"]["email"]["code"] == code


async def test_one_account_per_address_whatever_its_spelling(anon: httpx.AsyncClient) -> None:
    await configure(anon, auth__require_verification=False)
    created = await anon.post(
        "/api/auth/sign-up", json={"email": " Ann@BÜCHER.de ", "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    assert created.json()["user"]["email"] == "ann@xn--bcher-kva.de"
    for spelling in ("ann@bücher.de", "ANN@xn--bcher-kva.DE"):
        again = await anon.post("/api/auth/sign-up", json={"email": spelling, "password": PASSWORD})
        assert (again.status_code, again.json()["error"]["code"]) == (409, "email_taken")
        assert (await sign_in(anon, spelling)).email == spelling


# -- provider addresses -------------------------------------------------------------------------


@pytest.fixture
async def acme(anon: httpx.AsyncClient, idp: OidcProvider) -> OidcProvider:
    await configure(anon, auth__oidc={"acme": idp.setting()})
    return idp


@pytest.mark.parametrize("claim", ["ann@localhost", "not an address", "ann@@example.com"])
async def test_a_provider_address_that_is_no_address_is_ignored(
    anon: httpx.AsyncClient, acme: OidcProvider, claim: str
) -> None:
    response = await oidc_sign_in(anon, acme.id_token(email=claim, email_verified=True))
    assert response.status_code == 200, response.text
    user: dict[str, Any] = response.json()["user"]
    assert (user["email"], user["verified"]) == (None, False)


async def test_a_provider_address_links_in_its_stored_form(
    anon: httpx.AsyncClient, acme: OidcProvider
) -> None:
    await configure(anon, auth__require_verification=False)
    body = {"email": "ann@bücher.de", "password": PASSWORD}
    created = await anon.post("/api/auth/sign-up", json=body)
    assert created.status_code == 201, created.text
    token = acme.id_token(email="Ann@BÜCHER.DE", email_verified=True)
    response = await oidc_sign_in(anon, token)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == created.json()["user"]["id"]


async def test_a_verification_link_for_a_good_address_still_works(anon: httpx.AsyncClient) -> None:
    body = {"email": "Cara@Example.com", "password": PASSWORD}
    assert (await anon.post("/api/auth/sign-up", json=body)).status_code == 202
    link = await last_link(anon, "cara@example.com", "verify")
    confirmed = await anon.post("/api/auth/verification/confirm", json={"token": token_of(link)})
    assert confirmed.status_code == 200, confirmed.text
