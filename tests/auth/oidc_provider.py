"""A real OpenID provider on 127.0.0.1 (the standard library's HTTP server, in its own thread) for
tests that verify ID tokens: it publishes its keys and signs tokens with them.

    with OidcProvider() as provider:
        providers = {"acme": provider.setting()}          # an "auth.oidc" value
        token = provider.id_token()                       # RS256, default claims, NONCE
        token = provider.id_token(alg="ES256", email=None, exp=time.time() - 3600)

It serves `/.well-known/openid-configuration` (`provider.configuration`, a dict tests may edit) and
`/jwks.json` (the public JWKs of `provider.keys`), with `Cache-Control: provider.cache_control`.
`provider.requests` counts requests per path, so tests can tell a cache hit from a fetch;
`provider.rotate()` replaces the keys; `provider.unavailable = True` answers 503 to everything;
`provider.reset()` undoes all that (key generation is what is slow: share one provider per module
and reset it per test). Leaving the `with` block closes the port: a provider that is down.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import EllipsisType
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import api_jws
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

CLIENT_ID = "com.example.app"
NONCE = "n-0S6_WzA2Mj"  # the raw nonce default tokens carry
SUBJECT = "001234.5f6a7b8c9d"
EMAIL = "ann@example.com"
LIFETIME_S = 600

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class SigningKey:
    """A private key and its public JWK as published (tests may edit the JWK's fields)."""

    kid: str
    private_key: PrivateKey
    jwk: dict[str, Any]


def new_key(alg: str = "RS256", *, rsa_bits: int = 2048) -> SigningKey:
    """A fresh key for `alg` (RS*/PS* get an RSA key, ES256 a P-256 key), its JWK naming `alg`."""
    kid = f"{alg.lower()}-{uuid.uuid4().hex[:12]}"
    private_key: PrivateKey
    if _key_type(alg) == "RSA":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    else:
        private_key = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return SigningKey(kid, private_key, {**jwk, "kid": kid, "alg": alg, "use": "sig"})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OidcProvider:
    """Start with `with OidcProvider() as provider:`; see the module docstring."""

    def __init__(self, *, client_id: str = CLIENT_ID) -> None:
        self.client_id = client_id
        self._server = _Server(self)  # bound now: the port is known and nobody else takes it
        self.port: int = self._server.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.jwks_url = f"{self.issuer}/jwks.json"
        self.discovery_url = f"{self.issuer}/.well-known/openid-configuration"
        self.requests: Counter[str] = Counter()  # path -> requests served
        self._first_keys = [new_key("RS256"), new_key("ES256")]
        self._lock = threading.Lock()
        self.reset()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,))

    def __enter__(self) -> OidcProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def reset(self) -> None:
        """Back to how it started (same port, same first keys), for a provider shared by tests."""
        self.keys = [replace(key, jwk=dict(key.jwk)) for key in self._first_keys]
        with self._lock:
            self.requests.clear()
        self.cache_control = "public, max-age=3600"
        self.unavailable = False
        self.configuration: dict[str, Any] = {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }

    def setting(self, **entry: Any) -> dict[str, Any]:
        """This provider's entry for "auth.oidc" (keys found by discovery), plus `entry`."""
        return {"client_ids": [self.client_id], "issuer": self.issuer, **entry}

    def rotate(self) -> None:
        """Publish fresh keys (one RS256, one ES256) in place of the current ones."""
        self.keys = [new_key("RS256"), new_key("ES256")]

    def key_for(self, alg: str) -> SigningKey:
        """The first published key that can sign `alg`."""
        kty = _key_type(alg)
        return next(k for k in self.keys if k.jwk["kty"] == kty)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Default ID token claims with `overrides` applied; an override of None drops a claim."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": SUBJECT,
            "iat": now,
            "exp": now + LIFETIME_S,
            "email": EMAIL,
            "email_verified": True,
            "nonce": NONCE,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def id_token(
        self,
        *,
        alg: str = "RS256",
        kid: str | EllipsisType | None = ...,
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token of `claims` over the defaults (see `claims`), signed as `sign` does."""
        payload = json.dumps(self.claims(**claims)).encode()
        return self.sign(payload, alg=alg, kid=kid, key=key, headers=headers)

    def sign(
        self,
        payload: bytes,
        *,
        alg: str = "RS256",
        kid: str | EllipsisType | None = ...,
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """`payload` (any bytes) signed with `alg` by `key` (default: the published key for `alg`).

        `kid` is the header's key id (default: the signing key's; None leaves it out); `headers`
        adds header fields."""
        signer = key or self.key_for(alg)
        header = {**(headers or {})}
        if kid is not None:
            header["kid"] = signer.kid if kid is ... else kid
        return api_jws.encode(payload, signer.private_key, algorithm=alg, headers=header)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(k.jwk) for k in self.keys]}

    def _answer(self, path: str) -> tuple[int, Any]:
        with self._lock:
            self.requests[path] += 1
        if self.unavailable:
            return 503, {"error": "unavailable"}
        if path == "/.well-known/openid-configuration":
            return 200, self.configuration
        if path == "/jwks.json":
            return 200, self.jwks()
        return 404, {"error": "not found"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, provider: OidcProvider) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.provider = provider


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.0: one request per connection, so nothing lingers when the server stops."""

    server: _Server

    def do_GET(self) -> None:
        provider = self.server.provider
        status, document = provider._answer(urlsplit(self.path).path)
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", provider.cache_control)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows stderr of failing tests


def _key_type(alg: str) -> str:
    if alg.startswith(("RS", "PS")):
        return "RSA"
    if alg == "ES256":
        return "EC"
    raise ValueError(f"no test key for {alg}")
