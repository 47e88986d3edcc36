"""Access tokens: short-lived JWTs signed with the install's Ed25519 keys, published as a JWKS.

Keys live in `baas.signing_keys` (private halves sealed with the secret key). Each process holds
them in a `Signer`; signing uses the newest active key, verification any key still trusted.
A rotation publishes the new key ahead of its first use (`PUBLISH_AHEAD`), so every instance
(reloading on NOTIFY `baas_signing_keys`) and every JWKS cache knows it before a token names it.

A retired key vouches only for tokens issued before its retirement, and for no longer than their
type's lifetime (the access-token lifetime for access tokens): a key that leaked can be rotated
out, and whatever is forged with it afterwards is refused. Revoking a key drops it at once on
every instance. No token outlives `MAX_ACCESS_TTL`, whatever its `exp` claims.

Verification pins EdDSA, requires exp/iat/sub/sid/aud/iss/typ/role, checks aud and iss, and
accepts only the expected `typ`: refresh tokens are opaque and other one-time tokens are never
JWTs, so nothing else can pass for an access token. `jku`/`x5u` headers are never followed.
Every refusal answers the same `REFUSED_MESSAGE` message; the reason goes to the debug log.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from baas.auth.crypto import SecretBox
from baas.db.pool import Database, Executor
from baas.errors import Conflict, NotFound

ALGORITHM = "EdDSA"
AUDIENCE = "baas"
TOKEN_TYPE = "access"  # noqa: S105 - a claim value, not a secret
CHANNEL = "baas_signing_keys"
PUBLISH_AHEAD = timedelta(seconds=30)
JWKS_MAX_AGE_S = int(PUBLISH_AHEAD.total_seconds())  # a cached key set learns new keys in time
MAX_ACCESS_TTL = 86_400  # no signed token is honoured longer, whatever its exp or type
REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid", "aud", "iss", "typ", "role"]
LEEWAY_S = 30  # clock skew tolerated between instances
MAX_REMEMBERED = 10_000
_SEAL_PURPOSE = "signing key"
_LOCK_KEY = 0x6261_6173_0002


REFUSED_MESSAGE = (
    "the token is not valid: get a new one (sign in or refresh for an access token, "
    "ask again for an email link or a sign-in challenge)"
)
EXPIRED_MESSAGE = "the token has expired: refresh it (POST /api/auth/refresh) or sign in again"


class InvalidToken(Exception):
    """The token is not a valid token of this install; the message is the reason, for the
    debug log only (clients get REFUSED_MESSAGE)."""


class TokenExpired(InvalidToken):
    """A token of this install that is past its lifetime."""


def default_lifetime(token_type: str) -> int:
    return MAX_ACCESS_TTL


@dataclass(frozen=True)
class SigningKey:
    kid: str
    public: Ed25519PublicKey
    private: Ed25519PrivateKey | None
    jwk: dict[str, Any]
    active_from: float
    retired: float | None


class Signer:
    """This process's signing keys: signs and verifies tokens, serves the JWKS.

    `lifetime(token_type)` is the longest lifetime the install gives tokens of that type now
    (the access-token lifetime for access tokens); a token counts as expired at
    min(exp, iat + lifetime), and a retired key vouches for nothing beyond that."""

    def __init__(self, issuer: str, lifetime: Callable[[str], int] = default_lifetime) -> None:
        self.issuer = issuer
        self._lifetime = lifetime
        self._keys: dict[str, SigningKey] = {}
        self._jwks = b'{"keys":[]}'
        self._jwks_kids: tuple[str, ...] | None = None
        self._verified: dict[str, tuple[dict[str, Any], str]] = {}  # token -> (claims, kid)

    @property
    def jwks(self) -> bytes:
        """The public keys that may still verify an access token: the active and upcoming
        keys, and retired ones until their last access token has expired."""
        now = time.time()
        window = self.lifetime(TOKEN_TYPE) + LEEWAY_S
        published = tuple(
            k.kid for k in self._keys.values() if k.retired is None or now < k.retired + window
        )
        if published != self._jwks_kids:
            self._jwks = orjson.dumps({"keys": [self._keys[kid].jwk for kid in published]})
            self._jwks_kids = published
        return self._jwks

    def lifetime(self, token_type: str) -> int:
        """Seconds a token of `token_type` is honoured after its iat (at most MAX_ACCESS_TTL)."""
        return min(self._lifetime(token_type), MAX_ACCESS_TTL)

    def _current(self) -> SigningKey:
        now = time.time()
        usable = [
            k
            for k in self._keys.values()
            if k.private is not None
            and k.active_from <= now
            and (k.retired is None or k.retired > now)  # an old key signs until the new is due
        ]
        if not usable:  # a rotation in progress and its new key not active yet: the newest
            usable = [
                k
                for k in self._keys.values()
                if k.private is not None and (k.retired is None or k.retired > now)
            ]
        if not usable:
            raise RuntimeError("no signing key loaded")
        return max(usable, key=lambda k: k.active_from)

    def sign(
        self, claims: Mapping[str, Any], ttl_s: int, token_type: str = TOKEN_TYPE
    ) -> tuple[str, int]:
        """A signed token (access, unless `token_type` says otherwise: file tokens) with
        `claims` plus iss/aud/iat/exp/typ; (token, exp)."""
        key = self._current()
        now = int(time.time())
        exp = now + ttl_s
        payload = {
            **claims,
            "iss": self.issuer,
            "aud": AUDIENCE,
            "iat": now,
            "exp": exp,
            "typ": token_type,
        }
        headers = {"kid": key.kid, "typ": "at+jwt"}
        assert key.private is not None
        return jwt.encode(payload, key.private, algorithm=ALGORITHM, headers=headers), exp

    def verify(self, token: str, token_type: str = TOKEN_TYPE) -> dict[str, Any]:
        """The claims of a valid token of `token_type`; InvalidToken (TokenExpired) otherwise.
        The signature of a token is checked once and remembered (bounded) until it expires: an
        app sending one token with many requests pays for it once; what can change (the key's
        standing, the lifetime) is checked on every use."""
        verified = self._verified.get(token)
        if verified is None:
            verified = self._verify(token)
            if len(self._verified) >= MAX_REMEMBERED:
                self._verified.clear()
            self._verified[token] = verified
        claims, kid = verified
        self._check_standing(claims, kid, token_type, time.time())
        return claims

    def _check_standing(
        self, claims: dict[str, Any], kid: str, token_type: str, now: float
    ) -> None:
        if claims["typ"] != token_type:
            raise InvalidToken(f"a token of another type where a {token_type} token belongs")
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("signed with a key that is revoked or no longer trusted")
        issued = float(claims["iat"])
        if key.retired is not None and issued > key.retired:
            raise InvalidToken("issued after its signing key was retired")
        if now > min(float(claims["exp"]), issued + self.lifetime(token_type)) + LEEWAY_S:
            raise TokenExpired("expired")

    def _verify(self, token: str) -> tuple[dict[str, Any], str]:
        """The claims of a token signed by a key of ours, and that key's kid."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("not a JWT") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("unexpected signing algorithm")
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("signed with an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": REQUIRED_CLAIMS, "verify_signature": True},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("expired") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(_reason(exc)) from None
        if not all(isinstance(claims.get(k), str) for k in ("sub", "sid", "role", "typ")):
            raise InvalidToken("malformed claims")
        if not all(_is_time(claims[k]) for k in ("iat", "exp")):
            raise InvalidToken("malformed iat or exp")
        return claims, key.kid

    async def reload(self, db: Database, box: SecretBox) -> None:
        rows = await db.fetch(
            "SELECT kid, private_key, public_jwk, extract(epoch FROM active_from) AS active_from, "
            "extract(epoch FROM retired) AS retired FROM baas.signing_keys "
            "WHERE revoked IS NULL AND "
            "(retired IS NULL OR retired > now() - make_interval(secs => $1)) "
            "ORDER BY active_from",
            MAX_ACCESS_TTL + LEEWAY_S,
        )
        keys = {}
        for r in rows:
            jwk = _json(r["public_jwk"])
            private = serialization.load_der_private_key(
                box.open(bytes(r["private_key"]), _SEAL_PURPOSE), password=None
            )
            assert isinstance(private, Ed25519PrivateKey)
            keys[r["kid"]] = SigningKey(
                kid=r["kid"],
                public=private.public_key(),
                private=private,
                jwk=jwk,
                active_from=float(r["active_from"]),
                retired=float(r["retired"]) if r["retired"] is not None else None,
            )
        self._keys = keys
        self._verified = {}
        self._jwks_kids = None  # rebuilt on the next read


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _reason(exc: Exception) -> str:
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing the {exc.claim} claim"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "issued in the future"
    return "malformed"


def _json(value: Any) -> dict[str, Any]:
    parsed = orjson.loads(value) if isinstance(value, str | bytes) else value
    assert isinstance(parsed, dict)
    return parsed


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(public: Ed25519PublicKey) -> dict[str, Any]:
    """The JWK of a public key, with its RFC 7638 thumbprint as `kid`."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = _b64(raw)
    thumbprint = _b64(
        hashlib.sha256(f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'.encode()).digest()
    )
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": thumbprint,
        "alg": ALGORITHM,
        "use": "sig",
    }


async def _insert_key(db: Executor, box: SecretBox, active_in: timedelta) -> str:
    private = Ed25519PrivateKey.generate()
    jwk = public_jwk(private.public_key())
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    await db.execute(
        "INSERT INTO baas.signing_keys (kid, algorithm, private_key, public_jwk, active_from) "
        "VALUES ($1, $2, $3, $4, now() + $5)",
        jwk["kid"],
        ALGORITHM,
        box.seal(der, _SEAL_PURPOSE),
        jwk,
        active_in,
    )
    return str(jwk["kid"])


async def ensure_signing_key(db: Database, box: SecretBox) -> None:
    """Create the install's first signing key (once, whichever instance starts first)."""
    async with db.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        present = await tx.fetchval(
            "SELECT EXISTS (SELECT 1 FROM baas.signing_keys "
            "WHERE retired IS NULL AND revoked IS NULL)"
        )
        if not present:
            await _insert_key(tx, box, timedelta(0))


async def rotate_signing_key(db: Database, box: SecretBox) -> dict[str, Any]:
    """Publish a new key, active after PUBLISH_AHEAD; the old ones sign until then, and verify
    the tokens they signed until those expire (the access-token lifetime at most)."""
    async with db.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        kid = await _insert_key(tx, box, PUBLISH_AHEAD)
        await tx.execute(
            "UPDATE baas.signing_keys SET retired = now() + $2 WHERE kid <> $1 AND retired IS NULL",
            kid,
            PUBLISH_AHEAD,
        )
        await tx.execute("SELECT pg_notify($1, $2)", CHANNEL, kid)
    return {"kid": kid, "active_in_s": int(PUBLISH_AHEAD.total_seconds())}


async def revoke_signing_key(db: Database, kid: str) -> dict[str, Any]:
    """Stop trusting a key at once, on every instance (after a leak): the tokens it signed are
    refused from now on, and their apps refresh. The key tokens are signed with can be revoked
    only once a newer one exists (rotate first); the newer one then signs at once."""
    async with db.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        row = await tx.fetchrow(
            "SELECT retired FROM baas.signing_keys WHERE kid = $1 AND revoked IS NULL", kid
        )
        if row is None:
            raise NotFound(
                "no signing key with this kid that is not revoked already "
                "(GET /api/admin/signing-keys lists them)",
                code="signing_key_not_found",
            )
        successor = await tx.fetchval(
            "SELECT kid FROM baas.signing_keys WHERE kid <> $1 AND revoked IS NULL "
            "AND retired IS NULL",
            kid,
        )
        if successor is None:
            raise Conflict(
                "this is the only key tokens are signed with: rotate first "
                "(baas signing-keys rotate), then revoke it",
                code="last_signing_key",
            )
        await tx.execute(
            "UPDATE baas.signing_keys SET revoked = now(), "
            "retired = least(coalesce(retired, now()), now()) WHERE kid = $1",
            kid,
        )
        # A rotation's new key, still waiting to be published ahead: no key signs before it.
        await tx.execute(
            "UPDATE baas.signing_keys SET active_from = now() "
            "WHERE revoked IS NULL AND retired IS NULL AND active_from > now()"
        )
        await tx.execute("SELECT pg_notify($1, $2)", CHANNEL, kid)
    return {"kid": kid, "revoked": True, "signing_kid": successor}


async def list_signing_keys(db: Database) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT kid, algorithm, created, active_from, retired, revoked FROM baas.signing_keys "
        "ORDER BY active_from"
    )
    return [dict(r) for r in rows]
