"""OpenID Connect ID tokens from native sign-in SDKs (Apple, Google, any issuer): verified here.

A mobile app signs in with the platform SDK, gets an ID token, and POSTs it with the raw nonce it
used; `OidcVerifier.verify` checks the token against the provider's published keys and returns the
identity claims. Linking accounts and issuing sessions happen elsewhere; this module only verifies.

Providers come from the runtime setting "auth.oidc" (validated by `oidc_providers`). Keys come
from the provider's JWKS (generic providers: found through
`{issuer}/.well-known/openid-configuration`), fetched through the guarded outbound client
(`baas.net`: no internal addresses, no redirects, size and time limits) and cached per URL for the
response's max-age, clamped. Why a fetch failed is logged; clients get our own 503.

The token and the nonce are attacker-controlled, so:
- the algorithm comes from an asymmetric allow-list AND must fit the key its `kid` names: no
  `none`, no HS* "signed with the public key" confusion; `jku`/`x5u`/`jwk` headers are never read;
- an unknown `kid` refetches the JWKS at most once per `REFETCH_INTERVAL_S` per URL, so spraying
  random kids cannot make us hammer the provider; concurrent verifications share one fetch;
- the token, the nonce and every fetched document have size limits (named below).

pyjwt quirks handled here: it accepts a token without exp/iat unless told to require them; 2.10.0
compared a `str` issuer by substring (CVE-2024-53861), so issuers always go in as a tuple; its
`int()` accepts numeric strings for exp/iat/nbf, so their types are checked again; a `PyJWK`
verifies only with its own algorithm (guessed from `kty` when the JWK has no `alg`, RS256 for any
RSA key), so keys are built with the token's algorithm once we have checked that it fits.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

from baas.auth.oidc_providers import BUILT_IN, MAX_CLIENT_IDS, PROVIDER_NAME, parse_providers
from baas.errors import ApiError
from baas.net import MAX_URL_CHARS, Limits, OutboundClient, OutboundError, url_problem

__all__ = [
    "BUILT_IN",
    "MAX_CLIENT_IDS",
    "IdClaims",
    "InvalidIdToken",
    "OidcVerifier",
    "ProviderNotConfigured",
    "ProviderUnavailable",
    "parse_providers",
]
log = logging.getLogger("baas.auth.oidc")

MAX_ID_TOKEN_CHARS = 16 * 1024
MAX_NONCE_CHARS = 512
MAX_SUBJECT_CHARS = 255
MAX_DOCUMENT_BYTES = 256 * 1024  # a JWKS or discovery document
CACHE_MIN_S, CACHE_DEFAULT_S, CACHE_MAX_S = 300, 3600, 86400
REFETCH_INTERVAL_S = 60  # unknown-kid refetches, and retries of a failed refresh, per URL
RETRY_AFTER_FAILURE_S = 10  # nothing cached and the last fetch failed: answer 503 at once
LEEWAY_S = 60
MAX_IAT_AHEAD_S = 600

# alg -> (kty, crv): the only key type a JWK may have to verify that algorithm.
_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "EdDSA": ("OKP", "Ed25519"),
}
_REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat"]
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,12})", re.IGNORECASE)
_FETCH_HEADERS = {"Accept": "application/json"}


class InvalidIdToken(ApiError):
    status, code = 401, "invalid_id_token"


class ProviderNotConfigured(ApiError):
    status, code = 404, "provider_not_configured"


class ProviderUnavailable(ApiError):
    status, code = 503, "provider_unavailable"


@dataclass(frozen=True)
class IdClaims:
    provider: str
    subject: str
    email: str | None  # lower-cased, stripped
    email_verified: bool
    name: str | None
    claims: dict[str, Any]  # every verified claim


# --- fetching and caching provider documents (JWKS, discovery) -----------------------------


class _FetchFailed(Exception):
    """A provider document could not be fetched or was unusable (logged, never shown)."""


@dataclass(frozen=True)
class _Entry:
    document: dict[str, Any]
    attempted_at: float  # the last fetch attempt, successful or not (monotonic seconds)
    expires_at: float


class _DocumentCache:
    """Documents by URL, kept for their max-age; one fetch at a time per URL, shared by waiters."""

    def __init__(
        self,
        kind: str,
        download: Callable[[str], Awaitable[tuple[Any, float]]],
        check: Callable[[Any], dict[str, Any]],
        clock: Callable[[], float],
    ) -> None:
        self._kind, self._download, self._check, self._clock = kind, download, check, clock
        self._entries: dict[str, _Entry] = {}
        self._failed_at: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, url: str, *, refresh: bool = False) -> dict[str, Any]:
        """The document at `url`; `refresh` asks for a newer copy, at most once a minute."""
        entry = self._entries.get(url)
        if entry is not None and not self._stale(entry, refresh):
            return entry.document
        started = self._clock()
        lock = self._locks.get(url)
        if lock is None:
            lock = self._locks[url] = asyncio.Lock()
        async with lock:
            current = self._entries.get(url)
            if current is not None and (current is not entry or not self._stale(current, refresh)):
                return current.document  # fetched (or retried) while we waited
            if current is None and self._recently_failed(url, started):
                raise self._unavailable()
            return await self._fetch(url, current)

    def _stale(self, entry: _Entry, refresh: bool) -> bool:
        now = self._clock()
        wanted = refresh and now - entry.attempted_at >= REFETCH_INTERVAL_S
        return wanted or now >= entry.expires_at

    def _recently_failed(self, url: str, started: float) -> bool:
        failed_at = self._failed_at.get(url)
        if failed_at is None:
            return False
        return failed_at >= started or self._clock() - failed_at < RETRY_AFTER_FAILURE_S

    async def _fetch(self, url: str, current: _Entry | None) -> dict[str, Any]:
        now = self._clock()
        try:
            raw, max_age = await self._download(url)
            document = self._check(raw)
        except _FetchFailed as exc:
            log.warning("OpenID Connect %s %s could not be fetched: %s", self._kind, url, exc)
            self._failed_at[url] = now
            if current is None:
                raise self._unavailable() from None
            # Keep the keys we have; try again in a minute rather than on every request.
            self._entries[url] = _Entry(current.document, now, now + REFETCH_INTERVAL_S)
            return current.document
        self._entries[url] = _Entry(document, now, now + max_age)
        self._failed_at.pop(url, None)
        return document

    def _unavailable(self) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"the sign-in provider's {self._kind} could not be fetched; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_FAILURE_S)},
        )


def _checked_jwks(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _FetchFailed('not a JWKS: expected {"keys": [...]}')
    return document


def _checked_discovery(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise _FetchFailed("not an OpenID configuration: expected a JSON object")
    return document


def _max_age(cache_control: str) -> float:
    match = _MAX_AGE.search(cache_control)
    seconds = int(match[1]) if match else CACHE_DEFAULT_S
    return float(min(max(seconds, CACHE_MIN_S), CACHE_MAX_S))


# --- reading and checking the token ---------------------------------------------------------


def _read_header(id_token: Any) -> tuple[str, str | None]:
    """The token's algorithm (from the allow-list) and key id, before any key is fetched."""
    if not isinstance(id_token, str) or not id_token:
        raise InvalidIdToken("send the ID token as text")
    if len(id_token) > MAX_ID_TOKEN_CHARS:
        raise InvalidIdToken(f"the ID token is longer than {MAX_ID_TOKEN_CHARS} characters")
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise InvalidIdToken("the ID token is malformed") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in _ALGORITHMS:
        raise InvalidIdToken(
            "the ID token's algorithm is not allowed (allowed: " + ", ".join(_ALGORITHMS) + ")"
        )
    kid = header.get("kid")  # pyjwt has checked that a kid is a string
    return alg, kid


def _check_nonce_input(nonce: Any) -> None:
    if nonce is not None and (not isinstance(nonce, str) or not 0 < len(nonce) <= MAX_NONCE_CHARS):
        raise InvalidIdToken(f"the nonce must be text of 1 to {MAX_NONCE_CHARS} characters")


def _fits(jwk: Any, alg: str) -> bool:
    """Whether the JWK is a signing key of the type `alg` needs (and names no other alg)."""
    kty, crv = _ALGORITHMS[alg]
    return (
        isinstance(jwk, dict)
        and jwk.get("kty") == kty
        and (crv is None or jwk.get("crv") == crv)
        and jwk.get("use", "sig") == "sig"
        and jwk.get("alg", alg) == alg
    )


def _select_key(jwks: dict[str, Any], kid: str | None, alg: str) -> dict[str, Any] | None:
    """The JWK the token names, None when the JWKS does not hold it."""
    keys = [k for k in jwks["keys"] if isinstance(k, dict)]
    if kid is None:
        fitting = [k for k in keys if _fits(k, alg)]
        if len(fitting) > 1:
            raise InvalidIdToken("the ID token names no key (kid) and the provider has several")
        return fitting[0] if fitting else None
    named = [k for k in keys if k.get("kid") == kid]
    if not named:
        return None
    for key in named:
        if _fits(key, alg):
            return key
    raise InvalidIdToken("the ID token's algorithm does not match its key")


def _public_key(jwk: dict[str, Any], alg: str) -> jwt.PyJWK:
    try:
        return jwt.PyJWK(jwk, algorithm=alg)
    except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
        log.warning("OpenID Connect key %r is unusable: %s", jwk.get("kid"), exc)
        raise InvalidIdToken("the ID token is signed with a key we cannot use") from None


_DECODE_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the ID token has expired"),
    (jwt.ImmatureSignatureError, "the ID token is not valid yet (issued in the future)"),
    (jwt.InvalidAudienceError, "the ID token was issued to another app (wrong audience)"),
    (jwt.InvalidIssuerError, "the ID token comes from another issuer (wrong issuer)"),
    (jwt.InvalidSignatureError, "the ID token's signature is invalid (bad signature)"),
    (jwt.InvalidAlgorithmError, "the ID token's algorithm does not match its key"),
    (jwt.InvalidKeyError, "the ID token is signed with a key we cannot use"),
)


def _decode(
    id_token: str, key: jwt.PyJWK, alg: str, audience: list[str], issuers: tuple[str, ...]
) -> dict[str, Any]:
    """Signature, audience, issuer and lifetime, checked by pyjwt with everything pinned."""
    try:
        return jwt.decode(
            id_token,
            key=key,
            algorithms=[alg],
            audience=audience,
            issuer=issuers,  # a tuple: exact membership on every pyjwt 2.x
            leeway=LEEWAY_S,
            options={"require": list(_REQUIRED_CLAIMS), "enforce_minimum_key_length": True},
        )
    except jwt.PyJWTError as exc:
        raise InvalidIdToken(_why(exc)) from None


def _why(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the ID token has no {exc.claim} claim"
    for kind, message in _DECODE_ERRORS:
        if isinstance(exc, kind):
            return message
    return "the ID token is malformed"


def _check_claims(claims: dict[str, Any], client_ids: list[str], nonce: str | None) -> None:
    """What pyjwt leaves unchecked: claim types, iat bound, subject, azp and the nonce."""
    _check_times(claims, time.time())
    subject = claims["sub"]
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_CHARS:
        raise InvalidIdToken(f"the ID token's subject must be 1 to {MAX_SUBJECT_CHARS} characters")
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") not in client_ids:
        # OpenID Connect Core 3.1.3.7: a token for several audiences names the party it is for.
        raise InvalidIdToken("the ID token was issued to another app (wrong authorized party)")
    _check_nonce(claims.get("nonce"), nonce)


def _check_times(claims: dict[str, Any], now: float) -> None:
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidIdToken(f"the ID token's {name} claim is not a number")
    if claims["iat"] > now + MAX_IAT_AHEAD_S:
        raise InvalidIdToken("the ID token is not valid yet (issued in the future)")


def _check_nonce(token_nonce: Any, nonce: str | None) -> None:
    """The token's nonce must be the app's raw nonce or its SHA-256 hex (what iOS SDKs send)."""
    if token_nonce is None and nonce is None:
        return
    if nonce is None:
        raise InvalidIdToken("the ID token carries a nonce: send the raw nonce (nonce mismatch)")
    if token_nonce is None:
        raise InvalidIdToken("a nonce was sent but the ID token carries none (nonce mismatch)")
    if not isinstance(token_nonce, str):
        raise InvalidIdToken("the ID token's nonce is not text (nonce mismatch)")
    got, raw = _utf8(token_nonce), _utf8(nonce)
    hashed = hashlib.sha256(raw).hexdigest().encode()
    # `|` rather than `or`: both comparisons always run, in constant time.
    if not hmac.compare_digest(got, raw) | hmac.compare_digest(got, hashed):
        raise InvalidIdToken("the ID token's nonce does not match (nonce mismatch)")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # JSON may carry lone surrogates


def _identity(provider: str, claims: dict[str, Any]) -> IdClaims:
    email = _text_claim(claims, "email")
    email = email.lower() if email else None
    verified = claims.get("email_verified")
    # Apple sends "true"/"false" strings, Google booleans.
    is_verified = verified is True or (isinstance(verified, str) and verified.lower() == "true")
    name = _text_claim(claims, "name")
    if name is None:
        given, family = _text_claim(claims, "given_name"), _text_claim(claims, "family_name")
        name = " ".join(part for part in (given, family) if part) or None
    return IdClaims(
        provider=provider,
        subject=claims["sub"],
        email=email,
        email_verified=email is not None and is_verified,
        name=name,
        claims=claims,
    )


def _text_claim(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value.strip() or None if isinstance(value, str) else None


# --- the verifier ---------------------------------------------------------------------------


class OidcVerifier:
    """Verifies ID tokens; fetches through the outbound client into per-URL JWKS and discovery
    caches."""

    def __init__(self, outbound: OutboundClient, *, timeout_s: float = 5.0) -> None:
        self._outbound = outbound
        self._limits = Limits(
            connect_s=timeout_s,
            read_s=timeout_s,
            total_s=timeout_s * 2,
            max_bytes=MAX_DOCUMENT_BYTES,
        )
        # Monotonic seconds for the caches; tests move it forward instead of sleeping.
        self.clock: Callable[[], float] = time.monotonic
        self._jwks = _DocumentCache("keys", self._download, _checked_jwks, self._now)
        self._discovery = _DocumentCache(
            "OpenID configuration", self._download, _checked_discovery, self._now
        )

    async def verify(
        self,
        providers: Mapping[str, dict[str, Any]],
        provider: str,
        id_token: str,
        nonce: str | None,
    ) -> IdClaims:
        """The identity in `id_token` from `provider`, or an `ApiError` saying why not."""
        config = providers.get(provider)
        if config is None:
            raise ProviderNotConfigured(_not_configured(provider))
        alg, kid = _read_header(id_token)
        _check_nonce_input(nonce)
        key = await self._key(config, alg, kid)
        claims = _decode(id_token, key, alg, list(config["client_ids"]), _issuers(provider, config))
        _check_claims(claims, list(config["client_ids"]), nonce)
        return _identity(provider, claims)

    async def close(self) -> None:
        """Close the outbound client's connections (this is the last of its users to stop)."""
        await self._outbound.aclose()

    def _now(self) -> float:
        return self.clock()

    async def _key(self, config: Mapping[str, Any], alg: str, kid: str | None) -> jwt.PyJWK:
        url = await self._jwks_url(config)
        jwk = _select_key(await self._jwks.get(url), kid, alg)
        if jwk is None:  # perhaps rotated: a newer JWKS, at most once a minute
            jwk = _select_key(await self._jwks.get(url, refresh=True), kid, alg)
        if jwk is None:
            raise InvalidIdToken("the ID token is signed with an unknown key")
        return _public_key(jwk, alg)

    async def _jwks_url(self, config: Mapping[str, Any]) -> str:
        if config.get("jwks_url"):
            return str(config["jwks_url"])
        issuer = str(config["issuer"])
        document = await self._discovery.get(
            issuer.rstrip("/") + "/.well-known/openid-configuration"
        )
        jwks_uri = document.get("jwks_uri")
        if document.get("issuer") != issuer:
            problem = "its issuer differs from the configured one"
        elif not isinstance(jwks_uri, str) or len(jwks_uri) > MAX_URL_CHARS:
            problem = "it has no jwks_uri"
        else:
            problem = url_problem(jwks_uri) or ""
        if problem:
            log.warning("OpenID configuration of %s refused: %s", issuer, problem)
            raise ProviderUnavailable("the sign-in provider's OpenID configuration is unusable")
        return str(jwks_uri)

    async def _download(self, url: str) -> tuple[Any, float]:
        """GET a JSON document (guarded, size-capped, no redirects): it and its cache lifetime."""
        try:
            response = await self._outbound.request(
                "GET", url, headers=_FETCH_HEADERS, limits=self._limits
            )
        except OutboundError as exc:
            raise _FetchFailed(str(exc)) from None
        if response.status != 200:
            raise _FetchFailed(f"HTTP status {response.status}")
        try:
            document = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            raise _FetchFailed("not JSON") from None
        return document, _max_age(response.header("cache-control") or "")


def _issuers(provider: str, config: Mapping[str, Any]) -> tuple[str, ...]:
    issuer = str(config["issuer"])
    built_in = BUILT_IN.get(provider)
    if built_in is not None and issuer == built_in["issuer"]:
        return (issuer, *built_in["issuer_aliases"])
    return (issuer,)


def _not_configured(provider: Any) -> str:
    if isinstance(provider, str) and PROVIDER_NAME.fullmatch(provider):
        return f"sign-in with {provider!r} is not configured (auth.oidc)"
    return "no such sign-in provider"
