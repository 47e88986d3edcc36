"""Access tokens over HTTP: what the bearer check refuses (and with which code), the JWKS an
independent verifier trusts, signing-key rotation, and the install's secret key at start-up."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.server
import re
import stat
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from baas.auth import tokens
from baas.context import AppContext
from tests.auth.conftest import ADMIN, Account, last_link, sign_in, token_of
from tests.conftest import SECRET_KEY
from tests.e2e.servers import running, start_server

# -- helpers -----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return orjson.loads(_unb64(header)), orjson.loads(_unb64(payload)), signature


async def _server_key(ctx: AppContext) -> tuple[str, Ed25519PrivateKey]:
    """The install's active signing key, read from the database and unsealed (as an insider
    with the database and the secret key could): forged tokens differ in one thing only."""
    row = await ctx.db.fetchrow(
        "SELECT kid, private_key FROM baas.signing_keys WHERE retired IS NULL "
        "ORDER BY active_from DESC LIMIT 1"
    )
    der = ctx.box.open(bytes(row["private_key"]), "signing key")
    private = serialization.load_der_private_key(der, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return row["kid"], private


def _claims(ctx: AppContext, account: Account, **changes: Any) -> dict[str, Any]:
    """Valid access-token claims for `account`'s session; a value of None drops the claim."""
    now = int(time.time())
    claims = {
        "sub": account.id,
        "sid": account.tokens["session_id"],
        "role": "user",
        "amr": ["pwd"],
        "iss": ctx.settings.base_url,
        "aud": "baas",
        "iat": now,
        "exp": now + 600,
        "typ": "access",
        **changes,
    }
    return {k: v for k, v in claims.items() if v is not None}


async def _forge(
    ctx: AppContext, account: Account, headers: dict[str, Any] | None = None, **changes: Any
) -> str:
    kid, private = await _server_key(ctx)
    header = {"kid": kid, "typ": "at+jwt", **(headers or {})}
    return jwt.encode(_claims(ctx, account, **changes), private, algorithm="EdDSA", headers=header)


def _signed(header: dict[str, Any], payload: dict[str, Any], private: Ed25519PrivateKey) -> str:
    """A JWT signed by hand (headers pyjwt would refuse to write)."""
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"
    return f"{signing_input}.{_b64(private.sign(signing_input.encode()))}"


def _unsigned(header: dict[str, Any], payload: dict[str, Any], key: bytes | None = None) -> str:
    """A JWT built by hand: HS256 over `key`, or no signature at all."""
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"
    if key is None:
        return signing_input + "."
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


async def _answer(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


async def _refused(client: httpx.AsyncClient, token: str) -> str:
    """The error code of a 401 for `token` (fails on any other answer)."""
    response = await _answer(client, token)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    return str(response.json()["error"]["code"])


# -- what is refused ---------------------------------------------------------------------------


async def test_a_real_token_is_accepted_and_a_forged_valid_one_too(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account
) -> None:
    assert (await _answer(anon, alice.tokens["access_token"])).status_code == 200
    # The forging helper is sound: with nothing changed the token passes.
    assert (await _answer(anon, await _forge(ctx, alice))).json()["id"] == alice.id


async def test_expired_token_is_token_expired(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account
) -> None:
    claims = {"sub": alice.id, "sid": alice.tokens["session_id"], "role": "user", "amr": ["pwd"]}
    expired, exp = ctx.signer.sign(claims, ttl_s=-120)
    assert exp < time.time() - 60
    response = await _answer(anon, expired)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"
    # Within the clock-skew leeway a token still passes.
    barely, _ = ctx.signer.sign(claims, ttl_s=-5)
    assert (await _answer(anon, barely)).status_code == 200


async def test_tampered_payload_is_refused(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account
) -> None:
    header, payload, signature = alice.tokens["access_token"].split(".")
    claims = orjson.loads(_unb64(payload))
    for change in ({"role": "superuser"}, {"sub": "0190a0b0-0000-7000-8000-000000000000"}):
        forged_payload = _b64(orjson.dumps({**claims, **change}))
        assert await _refused(anon, f"{header}.{forged_payload}.{signature}") == "invalid_token"


async def test_tampered_signature_is_refused(anon: httpx.AsyncClient, alice: Account) -> None:
    header, payload, signature = alice.tokens["access_token"].split(".")
    raw = bytearray(_unb64(signature))
    raw[10] ^= 0x01
    assert await _refused(anon, f"{header}.{payload}.{_b64(bytes(raw))}") == "invalid_token"
    assert await _refused(anon, f"{header}.{payload}.") == "invalid_token"


async def test_alg_none_is_refused(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account
) -> None:
    header, payload, _ = _parts(alice.tokens["access_token"])
    for alg in ("none", "None", "NONE"):
        token = _unsigned({**header, "alg": alg}, payload)
        assert await _refused(anon, token) == "invalid_token"


async def test_hs256_signed_with_the_public_key_is_refused(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    """The classic key-confusion attack: HMAC keyed with the published public key."""
    jwk = (await anon.get("/api/auth/jwks.json")).json()["keys"][0]
    public = jwt.PyJWK(jwk).key
    candidates = [
        _unb64(jwk["x"]),
        jwk["x"].encode(),
        orjson.dumps(jwk),
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    ]
    header, payload, _ = _parts(alice.tokens["access_token"])
    for key in candidates:
        token = _unsigned({**header, "alg": "HS256"}, payload, key)
        assert await _refused(anon, token) == "invalid_token"


WRONG_CLAIMS: list[dict[str, Any]] = [
    {"aud": "other"},
    {"aud": ["other", "api"]},
    {"iss": "https://evil.example"},
    {"typ": "refresh"},
    {"typ": "id"},
    {"typ": None},
    {"exp": None},
    {"sid": None},
    {"sub": None},
    {"iat": None},
    {"role": None},
    {"aud": None},
    {"iss": None},
    {"sid": 42},
    {"exp": "soon"},
    {"iat": int(time.time()) + 3600},  # issued in the future
]


async def test_wrong_or_missing_claims_are_refused(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account
) -> None:
    for changes in WRONG_CLAIMS:
        assert await _refused(anon, await _forge(ctx, alice, **changes)) == "invalid_token", changes


async def test_header_must_name_a_known_key_and_eddsa(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account
) -> None:
    kid, private = await _server_key(ctx)
    claims = _claims(ctx, alice)
    for header in (
        {"alg": "EdDSA", "kid": "someone-elses"},
        {"alg": "EdDSA", "kid": None},
        {"alg": "EdDSA", "kid": [kid]},
        {"alg": "EdDSA", "kid": {kid: 1}},
        {"alg": "EdDSA"},
        {"alg": "ES256", "kid": kid},
        {"alg": ["EdDSA"], "kid": kid},
        {"kid": kid},
    ):
        assert await _refused(anon, _signed(header, claims, private)) == "invalid_token", header
    # The header's typ is informative; the typ claim decides.
    plain = {"alg": "EdDSA", "kid": kid, "typ": "JWT"}
    assert (await _answer(anon, _signed(plain, claims, private))).status_code == 200


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.server.jwks)  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def attacker_jwks() -> Iterator[tuple[str, Ed25519PrivateKey, dict[str, Any]]]:
    """A local server publishing an attacker's key (url, private key, jwk); records fetches."""
    private = Ed25519PrivateKey.generate()
    jwk = tokens.public_jwk(private.public_key())
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    server.jwks = orjson.dumps({"keys": [jwk]})  # type: ignore[attr-defined]
    _Recorder.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks.json", private, jwk
    finally:
        server.shutdown()
        server.server_close()


async def test_jku_x5u_and_embedded_jwk_headers_are_never_followed(
    anon: httpx.AsyncClient,
    ctx: AppContext,
    alice: Account,
    attacker_jwks: tuple[str, Ed25519PrivateKey, dict[str, Any]],
) -> None:
    url, private, jwk = attacker_jwks
    claims = _claims(ctx, alice)
    our_kid, _ = await _server_key(ctx)
    pointing = [{"jku": url}, {"x5u": url}, {"jwk": jwk}, {"jku": url, "x5u": url, "jwk": jwk}]
    for extra in pointing:
        for kid in (jwk["kid"], our_kid):
            header = {"kid": kid, "typ": "at+jwt", **extra}
            token = jwt.encode(claims, private, algorithm="EdDSA", headers=header)
            assert await _refused(anon, token) == "invalid_token"
        # Signed with our key, the same headers change nothing: judged by our key alone.
        assert (await _answer(anon, await _forge(ctx, alice, headers=extra))).status_code == 200
    assert _Recorder.hits == []


async def test_other_tokens_of_the_install_are_not_access_tokens(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    refused = {"refresh": alice.tokens["refresh_token"]}
    assert (
        await anon.post("/api/auth/password-reset", json={"email": alice.email})
    ).status_code == 202
    refused["reset"] = token_of(await last_link(anon, alice.email, "reset"))
    bob = await anon.post(
        "/api/auth/sign-up", json={"email": "bob@example.com", "password": "a long passphrase 42"}
    )
    assert bob.status_code == 202
    refused["verify"] = token_of(await last_link(anon, "bob@example.com", "verify"))

    secret = (await anon.post("/api/auth/mfa/totp", headers=alice.headers)).json()["secret"]
    confirmed = await anon.post(
        "/api/auth/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=alice.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    challenge = await anon.post(
        "/api/auth/sign-in", json={"email": alice.email, "password": alice.password}
    )
    assert challenge.json()["mfa_required"] is True
    refused["mfa"] = challenge.json()["mfa_token"]

    for kind, token in refused.items():
        assert await _refused(anon, token) == "invalid_token", kind
    # None of them was spent by being shown as a bearer: the reset link still works.
    reset = await anon.post(
        "/api/auth/password-reset/confirm",
        json={"token": refused["reset"], "password": "another long passphrase"},
    )
    assert reset.status_code == 200, reset.text


async def test_a_service_key_lookalike_is_refused(anon: httpx.AsyncClient) -> None:
    assert await _refused(anon, "baas_sk_" + "x" * 43) == "invalid_token"


_NOT_OBJECT = _b64(b"[1,2]")
GARBAGE = [
    "abc",
    "a.b.c",
    "...",
    "eyJ.eyJ.sig",
    "Bearer",
    "null",
    "{}",
    f"{_NOT_OBJECT}.{_NOT_OBJECT}.xx",
    f"{_b64(b'{')}.{_b64(b'{}')}.xx",
    _b64(b'{"alg":"EdDSA","kid":{"a":1}}') + ".e30.xx",
    _b64(b'{"alg":"EdDSA","kid":"' + b"k" * 3000 + b'"}') + ".e30.xx",
    "x" * 4000,
    "%00%ff",
    "\t",
]


BAD_HEADERS = [
    *(f"Bearer {g}" for g in GARBAGE),
    "Bearer " + "x" * 5000,
    "Bearer",
    "Bearer ",
    "Basic YWxpY2U6cGFzcw==",
    "Token abc",
    "bearer",
    "",
]


async def test_garbage_authorization_is_401_invalid_token(anon: httpx.AsyncClient) -> None:
    for authorization in BAD_HEADERS:
        response = await anon.get("/api/auth/me", headers={"Authorization": authorization})
        assert response.status_code == 401, (authorization[:50], response.text)
        assert response.json()["error"]["code"] == "invalid_token"
    raw = [(b"authorization", b"Bearer \xe9\xff.a.b")]
    response = await anon.get("/api/auth/me", headers=raw)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_token"


# -- the published keys ------------------------------------------------------------------------


async def test_jwks_lets_an_independent_verifier_check_a_real_token(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account
) -> None:
    response = await anon.get("/api/auth/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    # A cached key set must learn a rotated key before tokens name it.
    max_age = re.search(r"max-age=(\d+)", response.headers["cache-control"])
    assert max_age is not None and 0 < int(max_age[1]) <= tokens.PUBLISH_AHEAD.total_seconds()
    keys = response.json()["keys"]
    assert len(keys) == 1
    assert not {"d", "p", "q"} & set(keys[0])  # nothing private is published
    assert keys[0]["kty"] == "OKP" and keys[0]["crv"] == "Ed25519" and keys[0]["alg"] == "EdDSA"

    token = alice.tokens["access_token"]
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "typ": "at+jwt", "kid": keys[0]["kid"]}
    key = jwt.PyJWK(keys[0])
    claims = jwt.decode(
        token, key.key, algorithms=["EdDSA"], audience="baas", issuer=ctx.settings.base_url
    )
    assert {"sub", "sid", "role", "aud", "iss", "iat", "exp", "typ"} <= set(claims)
    assert claims["sub"] == alice.id
    assert claims["sid"] == alice.tokens["session_id"]
    assert (claims["role"], claims["typ"], claims["aud"]) == ("user", "access", "baas")
    assert claims["exp"] == alice.tokens["expires_at"]
    assert claims["exp"] - claims["iat"] == alice.tokens["expires_in"]
    # The kid is the key's RFC 7638 thumbprint, as the JWK says.
    x = keys[0]["x"]
    thumbprint = hashlib.sha256(f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'.encode()).digest()
    assert keys[0]["kid"] == _b64(thumbprint)


# -- rotation ----------------------------------------------------------------------------------


async def _kids(client: httpx.AsyncClient) -> set[str]:
    return {k["kid"] for k in (await client.get("/api/auth/jwks.json")).json()["keys"]}


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def test_rotation_publishes_ahead_and_old_tokens_keep_working(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    old_kid = _kid(alice.tokens["access_token"])
    refused = await anon.post("/api/admin/signing-keys/rotate", headers=alice.headers)
    assert refused.status_code in (401, 403), refused.text

    rotated = await anon.post("/api/admin/signing-keys/rotate", headers=ADMIN)
    assert rotated.status_code == 201, rotated.text
    new_kid = rotated.json()["kid"]
    assert rotated.json()["active_in_s"] == tokens.PUBLISH_AHEAD.total_seconds()
    assert new_kid != old_kid
    assert await _kids(anon) == {old_kid, new_kid}
    listed = (await anon.get("/api/admin/signing-keys", headers=ADMIN)).json()["items"]
    assert {k["kid"] for k in listed} == {old_kid, new_kid}
    assert not any("private_key" in k for k in listed)

    assert (await _answer(anon, alice.tokens["access_token"])).status_code == 200
    # Until the new key is active, tokens still name the old one: a verifier that fetched the
    # key set before the rotation (or an instance yet to reload) can check them.
    again = await sign_in(anon, alice.email)
    assert _kid(again.tokens["access_token"]) == old_kid


async def test_new_tokens_carry_the_new_kid_once_active(
    anon: httpx.AsyncClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "PUBLISH_AHEAD", timedelta(seconds=1))
    old_kid = _kid(alice.tokens["access_token"])
    rotated = await anon.post("/api/admin/signing-keys/rotate", headers=ADMIN)
    new_kid = rotated.json()["kid"]
    await asyncio.sleep(1.2)
    fresh = await sign_in(anon, alice.email)
    assert _kid(fresh.tokens["access_token"]) == new_kid
    refreshed = await anon.post(
        "/api/auth/refresh", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert _kid(refreshed.json()["access_token"]) == new_kid
    # The old key stays published (and trusted) while tokens it signed can still be valid.
    assert await _kids(anon) == {old_kid, new_kid}
    assert (await _answer(anon, alice.tokens["access_token"])).status_code == 200
    assert (await _answer(anon, fresh.tokens["access_token"])).status_code == 200


# -- the secret key at start-up ----------------------------------------------------------------


def _exits(tmp_path: Path, env: dict[str, str], name: str) -> str:
    """Start a server expected to refuse; its output."""
    server = start_server(tmp_path, env, name=name)
    code = server.process.wait(30)
    assert code != 0, server.output()
    return server.output()


@pytest.mark.slow
def test_placeholder_or_short_secret_key_is_refused(database_url: str, tmp_path: Path) -> None:
    base = {"BAAS_DATABASE_URL": database_url}
    placeholder = _exits(
        tmp_path, {**base, "BAAS_SECRET_KEY": "changeme-changeme-changeme-changeme"}, "ph"
    )
    assert "BAAS_SECRET_KEY" in placeholder and "placeholder" in placeholder
    short = _exits(tmp_path, {**base, "BAAS_SECRET_KEY": "s3cr3t-but-short"}, "short")
    assert "BAAS_SECRET_KEY" in short and "at least 32 characters" in short
    assert not (tmp_path / "data" / "secret.key").exists()


@pytest.mark.slow
def test_generated_key_is_private_reused_and_a_different_key_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    env = {"BAAS_DATABASE_URL": database_url, "BAAS_SECRET_KEY": ""}
    key_file = tmp_path / "data" / "secret.key"
    with running(tmp_path, env, name="first") as first, first.client() as c:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        generated = key_file.read_text()
        assert len(generated.strip()) >= 32
        jwks = c.get("/api/auth/jwks.json").json()
    with running(tmp_path, env, name="again") as again, again.client() as c:
        assert key_file.read_text() == generated
        assert c.get("/api/auth/jwks.json").json() == jwks  # same key: the signing key opens
    output = _exits(tmp_path, {**env, "BAAS_SECRET_KEY": SECRET_KEY}, "other")
    assert "different secret key" in output
