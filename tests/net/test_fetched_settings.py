"""Runtime settings naming URLs the server fetches (OpenID Connect issuers and key URLs, FCM
token endpoints) are refused when saved if the host resolves to an internal address or plain
HTTP would leave the operator's allowed networks: a 400 naming the host, the address, its kind
and the setting that allows it, and nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from baas.app import create_app
from baas.config import Settings
from tests.conftest import SERVICE_KEY, asgi_with_state
from tests.conftest import test_authenticate as authenticate_for_tests
from tests.push.fcm_server import FakeFcm

ADMIN = {"Authorization": f"Bearer {SERVICE_KEY}"}
ALLOWS = "the operator lists the network in BAAS_OUTBOUND_ALLOW_PRIVATE"


def oidc(**entry: Any) -> dict[str, Any]:
    return {"auth.oidc": {"acme": {"client_ids": ["com.example.app"], **entry}}}


@pytest.fixture(scope="module")
def account() -> dict[str, Any]:
    with FakeFcm() as fake:  # a real service-account JSON (its key is what costs)
        return fake.service_account_info()


def fcm(account: dict[str, Any], token_uri: str) -> dict[str, Any]:
    service_account = {**account, "token_uri": token_uri}
    return {"push.apps": {"droid": {"platform": "android", "service_account": service_account}}}


async def save(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.patch("/api/admin/settings", json=body, headers=ADMIN)


async def stored(client: httpx.AsyncClient, name: str) -> bool:
    items = (await client.get("/api/admin/settings", headers=ADMIN)).json()["items"]
    return bool(next(s for s in items if s["name"] == name)["set"])


REFUSED = [
    pytest.param(
        oidc(issuer="https://127.1/realms/x"),
        "acme.issuer: 127.1 resolves to 127.0.0.1, a loopback address",
        id="short-form",
    ),
    pytest.param(
        oidc(issuer="https://2130706433"),
        "acme.issuer: 2130706433 resolves to 127.0.0.1, a loopback address",
        id="decimal",
    ),
    pytest.param(
        oidc(issuer="https://0x7f.0.0.1"),
        "acme.issuer: 0x7f.0.0.1 resolves to 127.0.0.1, a loopback address",
        id="hex",
    ),
    pytest.param(
        oidc(issuer="https://[::ffff:127.0.0.1]:8443"),
        "an IPv4-mapped loopback address (127.0.0.1)",
        id="mapped",
    ),
    pytest.param(
        oidc(issuer="https://localhost/realm"),
        "acme.issuer: localhost resolves to",
        id="localhost",
    ),
    pytest.param(
        oidc(issuer="https://93.184.216.34", jwks_url="https://169.254.169.254/latest/keys"),
        "acme.jwks_url: 169.254.169.254 resolves to 169.254.169.254, a link-local address",
        id="metadata",
    ),
    pytest.param(
        {"auth.oidc": {"google": {"client_ids": ["a"], "jwks_url": "https://[::1]/certs"}}},
        "google.jwks_url: ::1 resolves to ::1, a loopback address",
        id="built-in-jwks",
    ),
    pytest.param(
        oidc(issuer="https://10.1.2.3/realms/main"),
        "acme.issuer: 10.1.2.3 resolves to 10.1.2.3, a private address",
        id="private",
    ),
    pytest.param(
        oidc(issuer="http://8.8.8.8/realm"),
        "acme.issuer: http://8.8.8.8 is plain HTTP: use https://",
        id="plain-http",
    ),
    pytest.param(
        oidc(issuer="https://issuer.invalid"),
        "acme.issuer: issuer.invalid does not resolve to any address",
        id="unresolvable",
    ),
]


@pytest.mark.parametrize(("body", "message"), REFUSED)
async def test_oidc_urls_naming_internal_addresses_are_refused_on_save(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await save(client, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    problem = error["fields"]["auth.oidc"]
    assert problem["code"] == "invalid_value" and message in problem["message"]
    assert "BAAS_OUTBOUND_ALLOW_PRIVATE" in problem["message"] or "resolve" in message
    assert not await stored(client, "auth.oidc")


@pytest.mark.parametrize(
    ("token_uri", "message"),
    [
        ("http://127.0.0.1:9/token", "http://127.0.0.1 is plain HTTP"),
        ("https://127.0.0.1/token", "127.0.0.1 resolves to 127.0.0.1, a loopback address"),
        ("https://[::ffff:a9fe:a9fe]/token", "IPv4-mapped link-local address (169.254.169.254)"),
        ("https://0.0.0.0/token", "an unspecified address"),
    ],
)
async def test_an_fcm_token_uri_naming_an_internal_address_is_refused_on_save(
    client: httpx.AsyncClient, account: dict[str, Any], token_uri: str, message: str
) -> None:
    response = await save(client, fcm(account, token_uri))
    assert response.status_code == 400, response.text
    problem = response.json()["error"]["fields"]["push.apps"]["message"]
    assert problem.startswith("droid.service_account.token_uri: ") and message in problem
    assert "BAAS_OUTBOUND_ALLOW_PRIVATE" in problem
    assert not await stored(client, "push.apps")


async def test_the_built_in_urls_are_saved_without_a_lookup(
    client: httpx.AsyncClient, account: dict[str, Any]
) -> None:
    """Google's and Apple's own URLs are ours, not an admin's: saving them needs no DNS."""
    body = {"auth.oidc": {"google": {"client_ids": ["web"]}, "apple": {"client_ids": ["b"]}}}
    assert (await save(client, body)).status_code == 200
    google = fcm(account, "https://oauth2.googleapis.com/token")
    assert (await save(client, google)).status_code == 200


@pytest.fixture
async def allowing(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with BAAS_OUTBOUND_ALLOW_PRIVATE=127.0.0.0/8."""
    application = create_app(
        settings.replace(outbound_allow_private=("127.0.0.0/8",)),
        authenticate=authenticate_for_tests,
    )
    async with application.router.lifespan_context(application) as state:
        transport = httpx.ASGITransport(app=asgi_with_state(application, state))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_the_operator_setting_allows_its_networks_and_nothing_more(
    allowing: httpx.AsyncClient, account: dict[str, Any]
) -> None:
    assert (await save(allowing, oidc(issuer="http://127.0.0.1:8080/realm"))).status_code == 200
    assert (await save(allowing, fcm(account, "http://2130706433:9/token"))).status_code == 200
    refused = await save(allowing, oidc(issuer="https://[::1]/realm"))
    assert refused.status_code == 400
    assert ALLOWS in refused.json()["error"]["fields"]["auth.oidc"]["message"]
