"""OpenID Connect ID tokens: verified against a real local provider (discovery, JWKS over HTTP),
every forgery refused, keys cached and refetched within their limits, and "auth.oidc" validated."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from baas.auth.oidc import (
    BUILT_IN,
    MAX_CLIENT_IDS,
    MAX_DOCUMENT_BYTES,
    MAX_ID_TOKEN_CHARS,
    MAX_NONCE_CHARS,
    REFETCH_INTERVAL_S,
    RETRY_AFTER_FAILURE_S,
    IdClaims,
    InvalidIdToken,
    OidcVerifier,
    ProviderNotConfigured,
    ProviderUnavailable,
    parse_providers,
)
from baas.net import AddressPolicy, OutboundClient
from baas.runtime_settings import BY_NAME, SettingValueError
from tests.auth.oidc_provider import (
    CLIENT_ID,
    EMAIL,
    NONCE,
    SUBJECT,
    OidcProvider,
    SigningKey,
    b64url,
    new_key,
)

DISCOVERY, JWKS = "/.well-known/openid-configuration", "/jwks.json"
NOW = int(time.time())  # tests run within seconds of collection; offsets below are minutes


class Clock:
    """The verifier's cache clock, moved by hand instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def shared_provider() -> Iterator[OidcProvider]:
    with OidcProvider() as server:
        yield server


@pytest.fixture
def provider(shared_provider: OidcProvider) -> OidcProvider:
    """The module's provider, as fresh as a new one (its keys are the costly part)."""
    shared_provider.reset()
    return shared_provider


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def verifier(clock: Clock) -> AsyncIterator[OidcVerifier]:
    # The provider is a local server: the operator setting lets the fetches reach 127.0.0.0/8.
    oidc = OidcVerifier(OutboundClient(AddressPolicy.allowing("127.0.0.0/8")), timeout_s=2)
    oidc.clock = clock
    yield oidc
    await oidc.close()


async def verify(
    verifier: OidcVerifier,
    provider: OidcProvider,
    token: str,
    nonce: str | None = NONCE,
    **entry: Any,
) -> IdClaims:
    """Verify `token` as provider "acme", configured from `provider.setting(**entry)`."""
    providers = parse_providers({"acme": provider.setting(**entry)})
    return await verifier.verify(providers, "acme", token, nonce)


async def refused(
    verifier: OidcVerifier, provider: OidcProvider, token: Any, nonce: Any = NONCE, **entry: Any
) -> str:
    """The message `token` is refused with (a 401 invalid_id_token)."""
    with pytest.raises(InvalidIdToken) as raised:
        await verify(verifier, provider, token, nonce, **entry)
    assert (raised.value.status, raised.value.code) == (401, "invalid_id_token")
    return raised.value.message


async def unavailable(verifier: OidcVerifier, provider: OidcProvider, **entry: Any) -> str:
    """The message a verification fails with while the provider cannot be used (a 503)."""
    with pytest.raises(ProviderUnavailable) as raised:
        await verify(verifier, provider, provider.id_token(), **entry)
    assert (raised.value.status, raised.value.code) == (503, "provider_unavailable")
    return raised.value.message


def forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None = None) -> str:
    """A token built by hand: HMAC-SHA256 signed with `secret`, or with no signature."""
    signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def public_pem(key: SigningKey) -> bytes:
    return key.private_key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )


# Valid tokens


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_a_valid_token_is_verified_and_its_claims_mapped(
    verifier: OidcVerifier, provider: OidcProvider, alg: str
) -> None:
    claims = await verify(verifier, provider, provider.id_token(alg=alg))

    assert claims.provider == "acme"
    assert claims.subject == SUBJECT
    assert (claims.email, claims.email_verified, claims.name) == (EMAIL, True, None)
    assert claims.claims["iss"] == provider.issuer
    assert claims.claims["aud"] == CLIENT_ID
    assert claims.claims["nonce"] == NONCE
    assert provider.requests == {DISCOVERY: 1, JWKS: 1}


@pytest.mark.parametrize(
    ("email", "verified", "expected"),
    [
        (" Ann@Example.COM ", True, ("ann@example.com", True)),
        (EMAIL, "true", (EMAIL, True)),  # Apple's string booleans
        (EMAIL, "TRUE", (EMAIL, True)),
        (EMAIL, "false", (EMAIL, False)),
        (EMAIL, False, (EMAIL, False)),
        (EMAIL, 1, (EMAIL, False)),
        (EMAIL, None, (EMAIL, False)),
        (None, True, (None, False)),
        ("  ", True, (None, False)),
        (42, True, (None, False)),
    ],
)
async def test_email_is_normalised_and_verified_only_when_the_token_says_so(
    verifier: OidcVerifier, provider: OidcProvider, email: Any, verified: Any, expected: Any
) -> None:
    token = provider.id_token(email=email, email_verified=verified)
    claims = await verify(verifier, provider, token)
    assert (claims.email, claims.email_verified) == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"name": " Ann Lee ", "given_name": "X"}, "Ann Lee"),
        ({"given_name": "Ann", "family_name": "Lee"}, "Ann Lee"),
        ({"family_name": "Lee"}, "Lee"),
        ({"name": " ", "given_name": "Ann"}, "Ann"),
        ({"name": 7}, None),
    ],
)
async def test_the_name_comes_from_name_or_given_and_family_names(
    verifier: OidcVerifier, provider: OidcProvider, names: dict[str, Any], expected: str | None
) -> None:
    claims = await verify(verifier, provider, provider.id_token(**names))
    assert claims.name == expected


async def test_a_token_for_any_configured_client_id_is_accepted(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    client_ids = ["web.example.app", CLIENT_ID]
    for audience in client_ids:
        token = provider.id_token(aud=audience)
        assert (await verify(verifier, provider, token, client_ids=client_ids)).subject == SUBJECT


async def test_clock_skew_within_a_minute_is_tolerated(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    now = int(time.time())
    for token in [
        provider.id_token(exp=now - 30),
        provider.id_token(iat=now + 30),
        provider.id_token(nbf=now + 30),
    ]:
        assert (await verify(verifier, provider, token)).subject == SUBJECT


async def test_a_token_without_kid_uses_the_only_key_that_fits(
    verifier: OidcVerifier, provider: OidcProvider, clock: Clock
) -> None:
    for alg in ["RS256", "ES256"]:
        assert (await verify(verifier, provider, provider.id_token(alg=alg, kid=None))).subject
    provider.keys.append(new_key("RS256"))
    clock.advance(3600)  # the cached keys expire
    message = await refused(verifier, provider, provider.id_token(kid=None))
    assert message == "the ID token names no key (kid) and the provider has several"


async def test_a_token_for_several_audiences_must_name_its_authorized_party(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    several = [CLIENT_ID, "com.other.app"]
    message = await refused(verifier, provider, provider.id_token(aud=several))
    assert "wrong authorized party" in message
    message = await refused(verifier, provider, provider.id_token(aud=several, azp="com.other"))
    assert "wrong authorized party" in message
    assert await verify(verifier, provider, provider.id_token(aud=several, azp=CLIENT_ID))
    assert await verify(verifier, provider, provider.id_token(aud=[CLIENT_ID]))


async def test_built_in_issuer_aliases_are_accepted(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    # Google's keys replaced by the local provider's: no request leaves this machine.
    entry = {"client_ids": [CLIENT_ID], "jwks_url": provider.jwks_url}
    providers = parse_providers({"google": entry, "apple": entry})
    for iss in ["https://accounts.google.com", "accounts.google.com"]:
        claims = await verifier.verify(providers, "google", provider.id_token(iss=iss), NONCE)
        assert claims.provider == "google"
    token = provider.id_token(iss="appleid.apple.com")
    with pytest.raises(InvalidIdToken, match="wrong issuer"):
        await verifier.verify(providers, "apple", token, NONCE)
    token = provider.id_token(iss="https://appleid.apple.com", email_verified="true")
    assert (await verifier.verify(providers, "apple", token, NONCE)).email_verified
    assert provider.requests == {JWKS: 1}


# Refused claims


REFUSED_CLAIMS = [
    pytest.param({"aud": "com.other.app"}, "wrong audience", id="audience"),
    pytest.param({"aud": []}, "has no aud claim", id="empty-audience"),
    pytest.param({"exp": NOW - 120}, "has expired", id="expired"),
    pytest.param({"nbf": NOW + 300}, "not valid yet", id="not-before"),
    pytest.param({"iat": NOW + 300}, "not valid yet", id="issued-in-the-future"),
    pytest.param({"iat": NOW + 3600, "exp": NOW + 7200}, "not valid yet", id="issued-later"),
    pytest.param({"iss": "https://evil.example"}, "wrong issuer", id="issuer"),
    pytest.param({"exp": str(NOW + 600)}, "exp claim is not a number", id="exp-as-text"),
    pytest.param({"iat": True}, "iat claim is not a number", id="iat-as-bool"),
    pytest.param({"nbf": str(NOW)}, "nbf claim is not a number", id="nbf-as-text"),
    pytest.param({"sub": ""}, "subject must be 1 to 255", id="empty-subject"),
    pytest.param({"sub": "s" * 256}, "subject must be 1 to 255", id="long-subject"),
    pytest.param({"sub": 12345}, "malformed", id="numeric-subject"),
    *(
        pytest.param({claim: None}, f"has no {claim} claim", id=f"no-{claim}")
        for claim in ["iss", "sub", "aud", "exp", "iat"]
    ),
]


@pytest.mark.parametrize(("claims", "message"), REFUSED_CLAIMS)
async def test_a_token_with_bad_claims_is_refused(
    verifier: OidcVerifier, provider: OidcProvider, claims: dict[str, Any], message: str
) -> None:
    assert message in await refused(verifier, provider, provider.id_token(**claims))


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param(lambda iss: iss + "/", id="trailing-slash"),
        # A prefix: pyjwt 2.10.0 compared a str issuer by substring (CVE-2024-53861).
        pytest.param(lambda iss: iss[:-1], id="prefix"),
        pytest.param(lambda iss: iss + "0", id="longer"),
        pytest.param(lambda iss: iss.upper(), id="upper-case"),
        pytest.param(lambda iss: [iss], id="list"),
    ],
)
async def test_an_issuer_must_match_exactly(
    verifier: OidcVerifier, provider: OidcProvider, issuer: Callable[[str], Any]
) -> None:
    token = provider.id_token(iss=issuer(provider.issuer))
    assert "wrong issuer" in await refused(verifier, provider, token)


# Signatures and algorithms


async def test_a_tampered_payload_is_refused(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    header, _, signature = provider.id_token().split(".")
    other = b64url(json.dumps(provider.claims(sub="someone-else")).encode())
    message = await refused(verifier, provider, f"{header}.{other}.{signature}")
    assert message == "the ID token's signature is invalid (bad signature)"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_a_token_signed_by_another_key_is_refused(
    verifier: OidcVerifier, provider: OidcProvider, alg: str
) -> None:
    token = provider.id_token(alg=alg, key=new_key(alg), kid=provider.key_for(alg).kid)
    assert "bad signature" in await refused(verifier, provider, token)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "HS256", "HS512", "ES256K", "RS1"])
async def test_algorithms_off_the_allow_list_are_refused_before_any_fetch(
    verifier: OidcVerifier, provider: OidcProvider, alg: str
) -> None:
    header = {"alg": alg, "kid": provider.key_for("RS256").kid}
    for token in [forged(header, provider.claims()), forged(header, provider.claims(), b"k")]:
        message = await refused(verifier, provider, token)
        assert message.startswith("the ID token's algorithm is not allowed")
    assert provider.requests == {}


async def test_hs256_signed_with_the_public_key_is_refused(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    rsa_key = provider.key_for("RS256")
    secrets = [public_pem(rsa_key), json.dumps(rsa_key.jwk).encode(), rsa_key.jwk["n"].encode()]
    for secret in secrets:
        token = forged({"alg": "HS256", "kid": rsa_key.kid}, provider.claims(), secret)
        message = await refused(verifier, provider, token)
        assert message.startswith("the ID token's algorithm is not allowed")
        # The same HMAC under an RS256 header is no RSA signature.
        token = forged({"alg": "RS256", "kid": rsa_key.kid}, provider.claims(), secret)
        assert "bad signature" in await refused(verifier, provider, token)


@pytest.mark.parametrize(("alg", "key_alg"), [("ES256", "RS256"), ("RS256", "ES256")])
async def test_an_algorithm_must_fit_the_key_its_kid_names(
    verifier: OidcVerifier, provider: OidcProvider, alg: str, key_alg: str
) -> None:
    token = provider.id_token(alg=alg, kid=provider.key_for(key_alg).kid)
    message = await refused(verifier, provider, token)
    assert message == "the ID token's algorithm does not match its key"


async def test_a_jwk_without_alg_serves_the_algorithms_of_its_key_type(
    verifier: OidcVerifier, provider: OidcProvider, clock: Clock
) -> None:
    rsa_key = provider.key_for("RS256")
    token = provider.id_token(alg="PS256")
    assert "does not match its key" in await refused(verifier, provider, token)

    del rsa_key.jwk["alg"]
    clock.advance(3600)  # the cached keys expire
    assert (await verify(verifier, provider, token)).subject == SUBJECT
    token = provider.id_token(alg="ES256", kid=rsa_key.kid)
    assert "does not match its key" in await refused(verifier, provider, token)


async def test_an_encryption_key_does_not_verify_signatures(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    provider.key_for("RS256").jwk["use"] = "enc"
    message = await refused(verifier, provider, provider.id_token())
    assert message == "the ID token's algorithm does not match its key"


async def test_a_key_shorter_than_2048_bits_is_refused(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    weak = new_key("RS256", rsa_bits=1024)
    provider.keys.append(weak)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)  # signing with it warns
        token = provider.id_token(key=weak)
    message = await refused(verifier, provider, token)
    assert message == "the ID token is signed with a key we cannot use"


@pytest.mark.parametrize(
    ("alg", "change"),
    [
        ("RS256", {"n": "!!not base64!!"}),
        ("RS256", {"n": "AQAB"}),  # a 17-bit modulus
        ("RS256", {"e": None}),
        ("ES256", {"x": "AAAA"}),
        ("ES256", {"y": None}),
    ],
)
async def test_a_broken_published_key_is_refused(
    verifier: OidcVerifier, provider: OidcProvider, alg: str, change: dict[str, Any]
) -> None:
    key = provider.key_for(alg)
    key.jwk = {name: value for name, value in (key.jwk | change).items() if value is not None}
    message = await refused(verifier, provider, provider.id_token(alg=alg))
    assert message == "the ID token is signed with a key we cannot use"


async def test_keys_named_in_the_token_header_are_never_fetched_or_used(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    with OidcProvider() as attacker:
        own = attacker.key_for("RS256")
        headers: list[dict[str, Any]] = [
            {"jku": attacker.jwks_url},
            {"x5u": attacker.jwks_url},
            {"jwk": own.jwk},
        ]
        for header in headers:
            token = attacker.id_token(headers=header, iss=provider.issuer)
            message = await refused(verifier, provider, token)
            assert message == "the ID token is signed with an unknown key"
            legit_kid = provider.key_for("RS256").kid
            token = attacker.id_token(headers=header, kid=legit_kid, iss=provider.issuer)
            assert "bad signature" in await refused(verifier, provider, token)
        assert attacker.requests == {}


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "send the ID token as text"),
        (["a.b.c"], "send the ID token as text"),
        ("", "send the ID token as text"),
        ("x" * (MAX_ID_TOKEN_CHARS + 1), f"longer than {MAX_ID_TOKEN_CHARS} characters"),
        ("not a token", "malformed"),
        ("a.b.c", "malformed"),
        (forged({"alg": "RS256", "kid": 5}, {}), "malformed"),
        (b64url(b"[1]") + ".e30.", "malformed"),
    ],
)
async def test_a_malformed_token_is_refused_before_any_fetch(
    verifier: OidcVerifier, provider: OidcProvider, token: Any, message: str
) -> None:
    assert message in await refused(verifier, provider, token)
    assert provider.requests == {}


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
async def test_a_signed_payload_that_is_no_claims_object_is_refused(
    verifier: OidcVerifier, provider: OidcProvider, payload: bytes
) -> None:
    message = await refused(verifier, provider, provider.sign(payload))
    assert message == "the ID token is malformed"


# Nonces


@pytest.mark.parametrize(
    ("in_token", "sent"),
    [
        (NONCE, NONCE),
        (hashlib.sha256(NONCE.encode()).hexdigest(), NONCE),  # what iOS SDKs put in the token
        ("ünïcødé-nonce", "ünïcødé-nonce"),
        (None, None),
    ],
)
async def test_a_matching_nonce_is_accepted(
    verifier: OidcVerifier, provider: OidcProvider, in_token: str | None, sent: str | None
) -> None:
    token = provider.id_token(nonce=in_token)
    assert (await verify(verifier, provider, token, sent)).subject == SUBJECT


@pytest.mark.parametrize(
    ("in_token", "sent"),
    [
        (NONCE, "another-nonce"),
        (NONCE, None),
        (None, NONCE),
        (hashlib.sha256(NONCE.encode()).hexdigest().upper(), NONCE),
        (
            hashlib.sha256(NONCE.encode()).hexdigest(),
            hashlib.sha256(NONCE.encode()).hexdigest()[:-1],
        ),
        (NONCE, NONCE + " "),
        ([NONCE], NONCE),
        (12345, "12345"),
    ],
)
async def test_a_missing_or_different_nonce_is_refused(
    verifier: OidcVerifier, provider: OidcProvider, in_token: Any, sent: str | None
) -> None:
    token = provider.id_token(nonce=in_token)
    assert "nonce mismatch" in await refused(verifier, provider, token, sent)


@pytest.mark.parametrize("nonce", ["", "n" * (MAX_NONCE_CHARS + 1), 12345, [NONCE]])
async def test_a_bad_nonce_is_refused_before_any_fetch(
    verifier: OidcVerifier, provider: OidcProvider, nonce: Any
) -> None:
    message = await refused(verifier, provider, provider.id_token(), nonce)
    assert message == f"the nonce must be text of 1 to {MAX_NONCE_CHARS} characters"
    assert provider.requests == {}


# Fetching and caching keys


async def test_keys_and_configuration_are_cached(
    verifier: OidcVerifier, provider: OidcProvider, clock: Clock
) -> None:
    for alg in ["RS256", "ES256", "RS256"]:
        await verify(verifier, provider, provider.id_token(alg=alg))
        clock.advance(60)
    assert provider.requests == {DISCOVERY: 1, JWKS: 1}


async def test_a_configured_jwks_url_skips_discovery(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    await verify(verifier, provider, provider.id_token(), jwks_url=provider.jwks_url)
    assert provider.requests == {JWKS: 1}


async def test_concurrent_verifications_share_one_fetch(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    tokens = [provider.id_token(alg=alg) for alg in ["RS256", "ES256"] * 5]
    results = await asyncio.gather(*(verify(verifier, provider, t) for t in tokens))
    assert {r.subject for r in results} == {SUBJECT}
    assert provider.requests == {DISCOVERY: 1, JWKS: 1}


@pytest.mark.parametrize(
    ("cache_control", "kept_s"),
    [
        ("public, max-age=600", 600),
        ('max-age="7200", must-revalidate', 7200),
        ("private, s-maxage=60, max-age=5", 300),  # at least five minutes
        ("max-age=9999999", 86400),  # at most a day
        ("no-cache", 3600),  # an hour when the provider does not say
    ],
)
async def test_documents_are_kept_for_their_max_age_clamped(
    verifier: OidcVerifier, provider: OidcProvider, clock: Clock, cache_control: str, kept_s: int
) -> None:
    provider.cache_control = cache_control
    await verify(verifier, provider, provider.id_token())
    clock.advance(kept_s - 1)
    await verify(verifier, provider, provider.id_token())
    assert provider.requests == {DISCOVERY: 1, JWKS: 1}
    clock.advance(1)
    await verify(verifier, provider, provider.id_token())
    assert provider.requests == {DISCOVERY: 2, JWKS: 2}


async def test_an_unknown_kid_refetches_the_keys_at_most_once_a_minute(
    verifier: OidcVerifier, provider: OidcProvider, clock: Clock
) -> None:
    await verify(verifier, provider, provider.id_token())
    for kid in ["unknown-1", "unknown-2"]:
        message = await refused(verifier, provider, provider.id_token(kid=kid))
        assert message == "the ID token is signed with an unknown key"
    assert provider.requests[JWKS] == 1  # fetched moments ago: not again

    clock.advance(REFETCH_INTERVAL_S)
    for kid in ["unknown-3", "unknown-4", "unknown-5"]:
        assert "unknown key" in await refused(verifier, provider, provider.id_token(kid=kid))
    assert provider.requests == {DISCOVERY: 1, JWKS: 2}


async def test_rotated_keys_are_picked_up_by_a_refetch(
    verifier: OidcVerifier, provider: OidcProvider, clock: Clock
) -> None:
    old_token = provider.id_token()
    await verify(verifier, provider, old_token)
    provider.rotate()
    new_tokens = [provider.id_token(alg=alg) for alg in ["RS256", "ES256"]]
    assert "unknown key" in await refused(verifier, provider, new_tokens[0])

    clock.advance(REFETCH_INTERVAL_S)
    for token in new_tokens:
        assert (await verify(verifier, provider, token)).subject == SUBJECT
    assert "unknown key" in await refused(verifier, provider, old_token)  # its key is gone
    assert provider.requests == {DISCOVERY: 1, JWKS: 2}


async def test_an_unknown_kid_on_first_contact_costs_one_fetch(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    assert "unknown key" in await refused(verifier, provider, provider.id_token(kid="nope"))
    assert provider.requests == {DISCOVERY: 1, JWKS: 1}


# An unavailable or unusable provider


async def test_an_unreachable_provider_is_a_503_with_retry_after(verifier: OidcVerifier) -> None:
    with OidcProvider() as gone:
        token = gone.id_token()
    with pytest.raises(ProviderUnavailable) as raised:
        await verify(verifier, gone, token)
    error = raised.value
    assert (error.status, error.code) == (503, "provider_unavailable")
    assert error.headers == {"Retry-After": str(RETRY_AFTER_FAILURE_S)}
    assert error.message.startswith("the sign-in provider's OpenID configuration could not")


async def test_a_failing_provider_is_not_asked_again_for_a_while(
    verifier: OidcVerifier, provider: OidcProvider, clock: Clock
) -> None:
    provider.unavailable = True
    failures = [unavailable(verifier, provider, jwks_url=provider.jwks_url) for _ in range(5)]
    await asyncio.gather(*failures)  # one fetch fails for all of them
    for _ in range(3):
        clock.advance(RETRY_AFTER_FAILURE_S / 4)
        await unavailable(verifier, provider, jwks_url=provider.jwks_url)
    assert provider.requests == {JWKS: 1}

    provider.unavailable = False
    clock.advance(RETRY_AFTER_FAILURE_S)
    await verify(verifier, provider, provider.id_token(), jwks_url=provider.jwks_url)
    assert provider.requests == {JWKS: 2}


async def test_cached_keys_outlive_an_outage(
    verifier: OidcVerifier, provider: OidcProvider, clock: Clock
) -> None:
    await verify(verifier, provider, provider.id_token())
    provider.unavailable = True
    clock.advance(3600)  # both documents expired
    await verify(verifier, provider, provider.id_token())
    assert provider.requests == {DISCOVERY: 2, JWKS: 2}

    clock.advance(REFETCH_INTERVAL_S - 1)
    await verify(verifier, provider, provider.id_token(alg="ES256"))
    assert "unknown key" in await refused(verifier, provider, provider.id_token(kid="new"))
    assert provider.requests == {DISCOVERY: 2, JWKS: 2}  # retried once a minute, not per request
    clock.advance(1)
    await verify(verifier, provider, provider.id_token())
    assert provider.requests == {DISCOVERY: 3, JWKS: 3}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"issuer": "https://issuer.example.com"}, id="other-issuer"),
        pytest.param({"issuer": None}, id="no-issuer"),
        pytest.param({"jwks_uri": None}, id="no-jwks-uri"),
        pytest.param({"jwks_uri": ["/jwks.json"]}, id="jwks-uri-not-text"),
        pytest.param({"jwks_uri": "/jwks.json"}, id="relative"),
        pytest.param({"jwks_uri": "https://x.example/" + "k" * 2000}, id="long"),
    ],
)
async def test_an_unusable_openid_configuration_is_a_503(
    verifier: OidcVerifier, provider: OidcProvider, change: dict[str, Any]
) -> None:
    provider.configuration |= change
    provider.configuration = {k: v for k, v in provider.configuration.items() if v is not None}
    message = await unavailable(verifier, provider)
    assert message == "the sign-in provider's OpenID configuration is unusable"
    assert provider.requests == {DISCOVERY: 1}


@pytest.mark.parametrize(
    ("jwks_path", "padding"),
    [
        pytest.param("/missing.json", 0, id="not-found"),
        pytest.param(DISCOVERY, 0, id="not-a-jwks"),
        pytest.param(JWKS, MAX_DOCUMENT_BYTES, id="too-large"),
    ],
)
async def test_an_unusable_jwks_is_a_503(
    verifier: OidcVerifier, provider: OidcProvider, jwks_path: str, padding: int
) -> None:
    provider.configuration["jwks_uri"] = provider.issuer + jwks_path
    provider.key_for("RS256").jwk["x-padding"] = "p" * padding
    message = await unavailable(verifier, provider)
    assert message == "the sign-in provider's keys could not be fetched; try again shortly"


async def test_an_oversized_openid_configuration_is_a_503(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    provider.configuration["padding"] = "p" * MAX_DOCUMENT_BYTES
    message = await unavailable(verifier, provider)
    assert message.startswith("the sign-in provider's OpenID configuration could not be fetched")


async def test_a_jwks_uri_httpx_cannot_encode_is_a_503(
    verifier: OidcVerifier, provider: OidcProvider
) -> None:
    provider.configuration["jwks_uri"] = "https://xn--a.example/jwks.json"
    await unavailable(verifier, provider)


async def test_an_unconfigured_provider_is_a_404(verifier: OidcVerifier) -> None:
    providers = parse_providers({"google": {"client_ids": [CLIENT_ID]}})
    for name, message in [
        ("apple", "sign-in with 'apple' is not configured (auth.oidc)"),
        ("../etc", "no such sign-in provider"),
    ]:
        with pytest.raises(ProviderNotConfigured) as raised:
            await verifier.verify(providers, name, "a.b.c", NONCE)
        error = raised.value
        assert (error.status, error.code, error.message) == (
            404,
            "provider_not_configured",
            message,
        )


# The "auth.oidc" setting


def test_built_in_providers_need_only_client_ids() -> None:
    parsed = parse_providers(
        {"google": {"client_ids": ["web", "ios"]}, "apple": {"client_ids": ["b"]}}
    )
    assert parsed == {
        "google": {
            "client_ids": ["web", "ios"],
            "issuer": "https://accounts.google.com",
            "jwks_url": "https://www.googleapis.com/oauth2/v3/certs",
        },
        "apple": {
            "client_ids": ["b"],
            "issuer": "https://appleid.apple.com",
            "jwks_url": "https://appleid.apple.com/auth/keys",
        },
    }
    assert set(BUILT_IN) == {"google", "apple"}


def test_a_generic_provider_finds_its_keys_by_discovery_unless_told() -> None:
    issuer = "https://login.example.com/realms/main"
    parsed = parse_providers(
        {
            "acme": {"client_ids": ["a", "b", "a"], "issuer": issuer},
            "corp": {"client_ids": ["c"], "issuer": issuer, "jwks_url": issuer + "/certs"},
        }
    )
    assert parsed["acme"] == {"client_ids": ["a", "b"], "issuer": issuer, "jwks_url": None}
    assert parsed["corp"]["jwks_url"] == issuer + "/certs"
    assert parse_providers({}) == {}


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://id.example/realm", "http://[::1]:9000/x", "https://a.b"],
)
def test_parsing_checks_the_form_only(url: str) -> None:
    """Where a URL points (internal addresses, plain HTTP) is judged when the setting is saved
    and at every fetch, both resolving the host (tests/net/test_settings_refused.py)."""
    parsed = parse_providers({"acme": {"client_ids": ["a"], "issuer": url, "jwks_url": url}})
    assert parsed["acme"]["issuer"] == parsed["acme"]["jwks_url"] == url


def _generic(**entry: Any) -> dict[str, Any]:
    return {"acme": {"client_ids": ["com.example.app"], "issuer": "https://id.example", **entry}}


REFUSED_SETTINGS = [
    pytest.param(["google"], "must be an object of provider name", id="not-an-object"),
    pytest.param({"Google": {"client_ids": ["a"]}}, "provider name 'Google'", id="upper-case"),
    pytest.param({"": {}}, "provider name ''", id="empty-name"),
    pytest.param({"a" * 41: {}}, "1-40 characters", id="long-name"),
    pytest.param({1: {}}, "provider name '1'", id="numeric-name"),
    pytest.param({"acme": ["a"]}, "acme: must be an object", id="entry-not-an-object"),
    pytest.param(_generic(client_secret="s"), "acme: unknown key client_secret", id="unknown-key"),
    pytest.param({"acme": {"client_ids": ["a"]}}, "acme.issuer: required", id="no-issuer"),
    pytest.param({"google": {}}, "google.client_ids: required", id="no-client-ids"),
    pytest.param(_generic(client_ids="a"), "acme.client_ids: must be a list", id="ids-text"),
    pytest.param(_generic(client_ids=[]), "acme.client_ids: must be a list", id="ids-empty"),
    pytest.param(_generic(client_ids=[""]), "acme.client_ids: must be", id="id-empty"),
    pytest.param(_generic(client_ids=["a" * 256]), "acme.client_ids: must be", id="id-long"),
    pytest.param(_generic(client_ids=["a\n"]), "acme.client_ids: must be", id="id-control"),
    pytest.param(_generic(client_ids=[7]), "acme.client_ids: must be", id="id-number"),
    pytest.param(
        _generic(client_ids=["a"] * (MAX_CLIENT_IDS + 1)), "acme.client_ids", id="ids-many"
    ),
    pytest.param(_generic(issuer="ftp://id.example"), "must be an https://", id="ftp"),
    pytest.param(
        _generic(jwks_url="file:///etc/passwd"), "acme.jwks_url: must name a host", id="file"
    ),
    pytest.param(
        {"google": {"client_ids": ["a"], "jwks_url": "gopher://keys.example"}},
        "google.jwks_url: must be an https://",
        id="built-in-jwks",
    ),
    pytest.param(_generic(issuer="id.example"), "must name a host", id="no-scheme"),
    pytest.param(_generic(issuer="https://"), "must name a host", id="no-host"),
    pytest.param(
        _generic(issuer="https://id.example/?t=1"), "must not contain a ?query", id="query"
    ),
    pytest.param(_generic(issuer="https://id.example/#x"), "#fragment", id="fragment"),
    pytest.param(_generic(issuer="https://u:p@id.example"), "user name or password", id="userinfo"),
    pytest.param(_generic(issuer="https://id .example"), "spaces or control", id="space"),
    pytest.param(_generic(issuer="https://id.example\n"), "spaces or control", id="newline"),
    pytest.param(_generic(issuer="https://id.example:99999"), "not a valid URL", id="port"),
    pytest.param(_generic(issuer="https://[::1"), "not a valid URL", id="bracket"),
    pytest.param(_generic(issuer=42), "acme.issuer: must be a URL", id="issuer-number"),
    pytest.param(_generic(issuer=""), "acme.issuer: must be a URL", id="issuer-empty"),
    pytest.param(
        _generic(issuer="https://id.example/" + "p" * 2000), "at most 2000", id="issuer-long"
    ),
]


@pytest.mark.parametrize(("value", "message"), REFUSED_SETTINGS)
def test_a_bad_setting_is_refused(value: Any, message: str) -> None:
    with pytest.raises(SettingValueError) as raised:
        parse_providers(value)
    assert message in str(raised.value)


def test_the_runtime_setting_is_parsed_by_parse_providers() -> None:
    setting = BY_NAME["auth.oidc"]
    assert setting.default == {}
    assert setting.parse({"apple": {"client_ids": ["b"]}})["apple"]["issuer"] == (
        "https://appleid.apple.com"
    )
    with pytest.raises(SettingValueError, match=r"acme\.issuer: required"):
        setting.parse({"acme": {"client_ids": ["a"]}})
