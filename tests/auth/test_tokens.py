"""Access tokens over HTTP: what the bearer check refuses (and with which code), the JWKS an
independent verifier trusts, signing-key rotation, and the install's secret key at start-up."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.server
import logging
import re
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from baas.app import create_app
from baas.auth import tokens
from baas.config import Settings
from baas.context import AppContext
from tests.auth.conftest import ADMIN, PASSWORD, Account, last_link, sign_in, token_of
from tests.conftest import SECRET_KEY, asgi_with_state
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


async def _pass_publish_ahead(ctx: AppContext) -> None:
    """The clock moves on past the rotation's PUBLISH_AHEAD: the stored times move back by as
    much (the database's clock is the one the keys' times come from)."""
    await ctx.db.execute(
        "UPDATE baas.signing_keys"
        " SET active_from = active_from - $1::interval, retired = retired - $1::interval",
        tokens.PUBLISH_AHEAD,
    )
    await ctx.signer.reload(ctx.db, ctx.box)


async def test_new_tokens_carry_the_new_kid_once_active(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account
) -> None:
    old_kid = _kid(alice.tokens["access_token"])
    rotated = await anon.post("/api/admin/signing-keys/rotate", headers=ADMIN)
    new_kid = rotated.json()["kid"]
    early = await sign_in(anon, alice.email)
    assert _kid(early.tokens["access_token"]) == old_kid  # not active yet
    await _pass_publish_ahead(ctx)
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


# -- one answer for every refused token ----------------------------------------------------------


async def _broken_access_tokens(ctx: AppContext, alice: Account) -> dict[str, tuple[str, str]]:
    """name -> (token, the reason the debug log gives)."""
    kid, private = await _server_key(ctx)
    header, payload, signature = alice.tokens["access_token"].split(".")
    raw = bytearray(_unb64(signature))
    raw[5] ^= 0x01
    return {
        "wrong signature": (f"{header}.{payload}.{_b64(bytes(raw))}", "bad signature"),
        "wrong aud": (await _forge(ctx, alice, aud="other"), "wrong audience"),
        "wrong iss": (await _forge(ctx, alice, iss="https://evil.example"), "wrong issuer"),
        "missing exp": (await _forge(ctx, alice, exp=None), "missing the exp claim"),
        "wrong type": (await _forge(ctx, alice, typ="refresh"), "token of another type"),
        "unknown kid": (
            _signed({"alg": "EdDSA", "kid": "someone-elses"}, _claims(ctx, alice), private),
            "unknown key",
        ),
        "alg none": (_unsigned({"alg": "none", "kid": kid}, _claims(ctx, alice)), "algorithm"),
        "garbage": ("abc.def", "not a JWT"),
        "refresh token": (alice.tokens["refresh_token"], "not a JWT"),
        "too long": ("x" * 5000, "longer than 4096"),
    }


def _same_refusal(response: httpx.Response, status: int = 401) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("invalid_token", tokens.REFUSED_MESSAGE)


def _logged(caplog: pytest.LogCaptureFixture, reason: str, token: str) -> None:
    """The reason is in the debug log; the token is not."""
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert reason in text, text
    assert token not in text


async def test_every_refused_access_token_gets_one_message_and_the_log_says_why(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="baas.auth")
    for token, reason in (await _broken_access_tokens(ctx, alice)).values():
        caplog.clear()
        _same_refusal(await _answer(anon, token))
        _logged(caplog, reason, token)
        # The same for a file token (?token= on a download) ...
        caplog.clear()
        url = f"/api/files/posts/{alice.id}/x.png"
        _same_refusal(await anon.get(url, params={"token": token}))
        _logged(caplog, reason, token)
    # ... whose own type is refused as an access token, like an access token as a file token.
    file_token = (await anon.post("/api/files/token", headers=alice.headers)).json()["token"]
    _same_refusal(await _answer(anon, file_token))
    url = f"/api/files/posts/{alice.id}/x.png"
    _same_refusal(await anon.get(url, params={"token": alice.tokens["access_token"]}))
    # A malformed header and an unknown service key say the same.
    for authorization in ("Basic YWxpY2U6cGFzcw==", "Bearer", "Bearer baas_sk_" + "x" * 43):
        response = await anon.get("/api/auth/me", headers={"Authorization": authorization})
        _same_refusal(response)


async def test_expired_and_ended_keep_their_own_codes(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account
) -> None:
    claims = {"sub": alice.id, "sid": alice.tokens["session_id"], "role": "user"}
    expired, _ = ctx.signer.sign(claims, ttl_s=-120)
    response = await _answer(anon, expired)
    assert response.json()["error"] == {
        **response.json()["error"],
        "code": "token_expired",
        "message": tokens.EXPIRED_MESSAGE,
    }
    await anon.post("/api/auth/sign-out", headers=alice.headers)
    assert await _refused(anon, alice.tokens["access_token"]) == "session_ended"


async def test_every_refused_one_time_token_gets_one_message(
    anon: httpx.AsyncClient, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="baas.auth")
    unknown, short = "u" * 43, "abc"
    answers = {
        "verify": ("/api/auth/verification/confirm", {}),
        "reset": ("/api/auth/password-reset/confirm", {"password": "a new long passphrase"}),
        "email change": ("/api/auth/email-change/confirm", {}),
        "setup": ("/api/admin/setup", {"email": "root@example.com", "password": PASSWORD}),
    }
    for path, body in answers.values():
        for token, reason in ((unknown, "no unused, unexpired"), (short, "missing or malformed")):
            caplog.clear()
            _same_refusal(await anon.post(path, json={**body, "token": token}), 400)
            _logged(caplog, reason, token)
    for token, reason in ((unknown, "no unused, unexpired mfa challenge"), (short, "malformed")):
        caplog.clear()
        body = {"mfa_token": token, "code": "123456"}
        _same_refusal(await anon.post("/api/auth/mfa/verify", json=body), 400)
        _logged(caplog, reason, token)
    # A link used once answers the same as one never issued.
    await anon.post("/api/auth/password-reset", json={"email": alice.email})
    link = token_of(await last_link(anon, alice.email, "reset"))
    body = {"token": link, "password": "a new long passphrase"}
    assert (await anon.post("/api/auth/password-reset/confirm", json=body)).status_code == 200
    _same_refusal(await anon.post("/api/auth/password-reset/confirm", json=body), 400)


async def test_every_refused_refresh_token_gets_one_message(
    anon: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="baas.auth")
    answers = set()
    for token, reason in (("r" * 43, "unknown"), ("abc", "malformed")):
        caplog.clear()
        response = await anon.post("/api/auth/refresh", json={"refresh_token": token})
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        answers.add((error["code"], error["message"]))
        _logged(caplog, reason, str(token))
    assert answers == {("invalid_refresh_token", "the refresh token is not valid: sign in again")}


# -- retired and revoked keys ------------------------------------------------------------------


async def _key(ctx: AppContext, kid: str) -> Ed25519PrivateKey:
    row = await ctx.db.fetchrow("SELECT private_key FROM baas.signing_keys WHERE kid = $1", kid)
    private = serialization.load_der_private_key(
        ctx.box.open(bytes(row["private_key"]), "signing key"), password=None
    )
    assert isinstance(private, Ed25519PrivateKey)
    return private


async def _forged_with(ctx: AppContext, account: Account, kid: str, **changes: Any) -> str:
    """A token signed with the key `kid` (as whoever stole it could)."""
    header = {"kid": kid, "typ": "at+jwt"}
    claims = _claims(ctx, account, **changes)
    return jwt.encode(claims, await _key(ctx, kid), algorithm="EdDSA", headers=header)


async def _retire_back(ctx: AppContext, kid: str, seconds: int) -> float:
    """Move `kid`'s retirement `seconds` into the past (a controlled clock); its epoch."""
    retired = await ctx.db.fetchval(
        "UPDATE baas.signing_keys SET retired = now() - make_interval(secs => $2) "
        "WHERE kid = $1 RETURNING extract(epoch FROM retired)",
        kid,
        seconds,
    )
    await ctx.signer.reload(ctx.db, ctx.box)
    return float(retired)


async def test_a_retired_key_vouches_only_for_what_it_signed_before_retiring(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account
) -> None:
    old_kid = _kid(alice.tokens["access_token"])
    assert (await anon.post("/api/admin/signing-keys/rotate", headers=ADMIN)).status_code == 201
    retired = await _retire_back(ctx, old_kid, 60)  # rotated a minute ago
    # Issued before the retirement, within the access-token lifetime (900 s): still good.
    before = int(retired) - 30
    honest = await _forged_with(ctx, alice, old_kid, iat=before, exp=before + 900)
    assert (await _answer(anon, honest)).status_code == 200
    # Minted with the old key after its retirement (a stolen key): refused, whatever exp says.
    now = int(time.time())
    for forged in (
        await _forged_with(ctx, alice, old_kid, iat=now, exp=now + 600),
        await _forged_with(ctx, alice, old_kid, iat=int(retired) + 1, exp=now + 86_400),
    ):
        assert await _refused(anon, forged) == "invalid_token"
    # Backdated to before the retirement, its exp far away: it dies with the access lifetime.
    backdated = await _forged_with(ctx, alice, old_kid, iat=before, exp=now + 30 * 86_400)
    assert (await _answer(anon, backdated)).status_code == 200
    await _retire_back(ctx, old_kid, 1000)  # now past retirement + 900 s + leeway
    old = int(time.time()) - 1000
    for token in (
        await _forged_with(ctx, alice, old_kid, iat=old - 10, exp=old + 30 * 86_400),
        await _forged_with(ctx, alice, old_kid, iat=old - 10, exp=old + 800),
    ):
        assert await _refused(anon, token) == "token_expired"
    # And the key set no longer lists it: its last access token has expired.
    assert old_kid not in await _kids(anon)


async def test_no_token_outlives_its_type_lifetime_whatever_its_exp(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account
) -> None:
    kid = _kid(alice.tokens["access_token"])
    now = int(time.time())
    long_lived = await _forged_with(ctx, alice, kid, iat=now - 1000, exp=now + 86_400)
    assert await _refused(anon, long_lived) == "token_expired"  # 900 s after iat
    fresh = await _forged_with(ctx, alice, kid, iat=now - 100, exp=now + 86_400)
    assert (await _answer(anon, fresh)).status_code == 200


async def test_revoking_a_key_refuses_its_tokens_at_once_on_every_instance(
    anon: httpx.AsyncClient, ctx: AppContext, alice: Account, settings: Settings
) -> None:
    old_kid = _kid(alice.tokens["access_token"])
    only = await anon.delete(f"/api/admin/signing-keys/{old_kid}", headers=ADMIN)
    assert (only.status_code, only.json()["error"]["code"]) == (409, "last_signing_key")
    assert "rotate first" in only.json()["error"]["message"]
    unknown = await anon.delete("/api/admin/signing-keys/nope", headers=ADMIN)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "signing_key_not_found")
    refused = await anon.delete(f"/api/admin/signing-keys/{old_kid}", headers=alice.headers)
    assert refused.status_code == 403

    other = create_app(settings)  # a second instance on the same database
    async with other.router.lifespan_context(other) as state:
        transport = httpx.ASGITransport(app=asgi_with_state(other, state))
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as second:
            assert (await _answer(second, alice.tokens["access_token"])).status_code == 200
            rotated = await anon.post("/api/admin/signing-keys/rotate", headers=ADMIN)
            new_kid = rotated.json()["kid"]
            revoked = await anon.delete(f"/api/admin/signing-keys/{old_kid}", headers=ADMIN)
            assert revoked.status_code == 204, revoked.text

            assert await _refused(anon, alice.tokens["access_token"]) == "invalid_token"
            deadline = time.monotonic() + 10
            while (await _answer(second, alice.tokens["access_token"])).status_code == 200:
                assert time.monotonic() < deadline, "the other instance still trusts the key"
                await asyncio.sleep(0.02)
            assert await _refused(second, alice.tokens["access_token"]) == "invalid_token"
            assert await _kids(second) == {new_kid}

    assert await _kids(anon) == {new_kid}
    # The session lives on: a refresh gets a token signed with the new key, good at once.
    refreshed = await anon.post(
        "/api/auth/refresh", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert _kid(refreshed.json()["access_token"]) == new_kid
    assert (await _answer(anon, refreshed.json()["access_token"])).status_code == 200
    listed = (await anon.get("/api/admin/signing-keys", headers=ADMIN)).json()["items"]
    states = {k["kid"]: (k["retired"] is not None, k["revoked"] is not None) for k in listed}
    assert states == {old_kid: (True, True), new_kid: (False, False)}
    again = await anon.delete(f"/api/admin/signing-keys/{old_kid}", headers=ADMIN)
    assert again.status_code == 404
    # The new key is now the only one in use: it cannot be revoked.
    last = await anon.delete(f"/api/admin/signing-keys/{new_kid}", headers=ADMIN)
    assert (last.status_code, last.json()["error"]["code"]) == (409, "last_signing_key")
