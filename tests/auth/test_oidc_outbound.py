"""OpenID Connect fetches go through the guarded client: the operator setting decides whether the
local provider may be reached at all, and a discovery document cannot point the key fetch at an
internal address; nothing fetched reaches the client's error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from baas.auth.oidc import OidcVerifier, ProviderUnavailable, parse_providers
from baas.net import AddressPolicy, OutboundClient
from tests.auth.oidc_provider import NONCE, OidcProvider
from tests.net.servers import Listener

DISCOVERY = "/.well-known/openid-configuration"


@pytest.fixture(scope="module")
def shared_provider() -> Iterator[OidcProvider]:
    with OidcProvider() as server:
        yield server


@pytest.fixture
def provider(shared_provider: OidcProvider) -> OidcProvider:
    shared_provider.reset()
    return shared_provider


async def verify(policy: AddressPolicy, provider: OidcProvider) -> None:
    verifier = OidcVerifier(OutboundClient(policy), timeout_s=2)
    try:
        providers = parse_providers({"acme": provider.setting()})
        await verifier.verify(providers, "acme", provider.id_token(), NONCE)
    finally:
        await verifier.close()


async def test_the_local_provider_is_reached_only_when_the_operator_allows_it(
    provider: OidcProvider,
) -> None:
    with pytest.raises(ProviderUnavailable) as raised:
        await verify(AddressPolicy(), provider)  # the default: nothing internal
    assert raised.value.message.startswith("the sign-in provider's OpenID configuration could not")
    assert provider.requests == {}  # not even the discovery document was asked for
    await verify(AddressPolicy.allowing("127.0.0.1"), provider)
    assert provider.requests == {DISCOVERY: 1, "/jwks.json": 1}


@pytest.fixture
def trap() -> Iterator[Listener]:
    with Listener("127.0.0.3") as listener:
        yield listener


@pytest.mark.parametrize(
    "jwks_uri",
    [
        "https://127.0.0.3:{p}/jwks.json",
        "http://127.0.0.3:{p}/jwks.json",
        "https://2130706435:{p}/jwks.json",
        "https://0x7f.0.0.3:{p}/jwks.json",
        "https://[::ffff:127.0.0.3]:{p}/jwks.json",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/jwks.json",
    ],
)
async def test_a_discovered_jwks_uri_on_an_internal_address_is_never_fetched(
    provider: OidcProvider, trap: Listener, jwks_uri: str
) -> None:
    """Only the provider's own address (127.0.0.1) is allowed; its discovery document names
    another internal address for the keys."""
    provider.configuration["jwks_uri"] = jwks_uri.format(p=trap.port)
    with pytest.raises(ProviderUnavailable) as raised:
        await verify(AddressPolicy.allowing("127.0.0.1"), provider)
    assert (
        raised.value.message
        == "the sign-in provider's keys could not be fetched; try again shortly"
    )
    assert provider.requests == {DISCOVERY: 1}
    assert trap.connections() == 0
