"""Helpers for the auth tests: runtime settings, links from the mail outbox, signed-up users."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from baas.config import Settings
from tests.auth.oidc_provider import NONCE, OidcProvider
from tests.conftest import LOCAL_NETWORKS, SERVICE_KEY

ADMIN = {"Authorization": f"Bearer {SERVICE_KEY}"}
PASSWORD = "correct horse battery staple"
_LINK = re.compile(r"https?://\S+\?token=[A-Za-z0-9_\-]+")


async def configure(client: httpx.AsyncClient, **values: Any) -> None:
    """Set runtime settings (dots spelled as double underscores: auth__anonymous=True)."""
    body = {name.replace("__", "."): value for name, value in values.items()}
    response = await client.patch("/api/admin/settings", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text


async def mails(client: httpx.AsyncClient, recipient: str) -> list[dict[str, Any]]:
    """Mails to `recipient`, newest first (bodies included)."""
    response = await client.get("/api/admin/mail", params={"recipient": recipient}, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def last_link(client: httpx.AsyncClient, recipient: str, template: str | None = None) -> str:
    """The link in the newest mail (of `template`) to `recipient`."""
    for mail in await mails(client, recipient):
        if template is None or mail["template"] == template:
            match = _LINK.search(mail["text"])
            assert match, mail["text"]
            return match.group(0)
    raise AssertionError(f"no {template or ''} mail to {recipient}")


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


@dataclass
class Account:
    id: str
    email: str
    password: str
    tokens: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}


async def sign_up(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **fields: Any
) -> Account:
    """Sign up, follow the verification link, sign in: a verified account with a session."""
    response = await client.post(
        "/api/auth/sign-up", json={"email": email, "password": password, **fields}
    )
    assert response.status_code == 202, response.text
    token = token_of(await last_link(client, email, "verify"))
    confirmed = await client.post("/api/auth/verification/confirm", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    return await sign_in(client, email, password)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Account:
    response = await client.post("/api/auth/sign-in", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    tokens = response.json()
    me = await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200, me.text
    return Account(me.json()["id"], email, password, tokens)


@pytest.fixture
async def alice(anon: httpx.AsyncClient) -> Account:
    return await sign_up(anon, "alice@example.com")


# -- OpenID Connect sign-in over HTTP (a real local provider) -----------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The local OpenID provider is on 127.0.0.1: the operator lets server-side fetches reach it."""
    return settings.replace(outbound_allow_private=LOCAL_NETWORKS)


@pytest.fixture(scope="module")
def module_settings(module_settings: Settings) -> Settings:
    return module_settings.replace(outbound_allow_private=LOCAL_NETWORKS)


@pytest.fixture(scope="module")
def _module_idp() -> Iterator[OidcProvider]:
    with OidcProvider() as server:
        yield server


@pytest.fixture
def idp(_module_idp: OidcProvider) -> OidcProvider:
    """The module's OpenID provider, reset (its keys are the costly part: one per module)."""
    _module_idp.reset()
    return _module_idp


async def oidc_sign_in(
    client: httpx.AsyncClient,
    id_token: str,
    nonce: str | None = NONCE,
    provider: str = "acme",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST an ID token to /api/auth/oidc/{provider} (as `headers`' caller, if given)."""
    body = {"id_token": id_token} if nonce is None else {"id_token": id_token, "nonce": nonce}
    return await client.post(f"/api/auth/oidc/{provider}", json=body, headers=headers or {})
