"""Bearer tokens -> Identity, from memory only (the request middleware calls this per request).

A bearer is a service key (`baas_sk_...`) or an access token (a JWT of this install). No header
means anonymous; a header that is present but wrong is a 401, never a silent downgrade to
anonymous, so a client with an expired or mistyped credential finds out at once.

A revoked session's access tokens are refused on every request, however recently verified.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from baas.auth.identity import ANONYMOUS, Identity
from baas.auth.keys import PREFIX
from baas.auth.sessions import identity_from_claims
from baas.auth.tokens import TOKEN_TYPE, InvalidToken
from baas.errors import Unauthorized

MAX_TOKEN_LENGTH = 4096


def authenticate(scope: MutableMapping[str, Any], header: str | None) -> Identity:
    if header is None:
        return ANONYMOUS
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized(
            "send credentials as 'Authorization: Bearer <token>'", code="invalid_token"
        )
    ctx = scope["state"]["ctx"]
    if token.startswith(PREFIX):
        found = ctx.keys.identify(token)
        if found is None:
            raise Unauthorized("unknown or revoked service key", code="invalid_token")
        return found  # type: ignore[no-any-return]
    return identify_access_token(ctx, token)


def identify_access_token(ctx: Any, token: str) -> Identity:
    """The identity of a valid, unrevoked access token; 401 otherwise."""
    return identity_from_claims(access_claims(ctx, token))


def access_claims(ctx: Any, token: str, token_type: str = TOKEN_TYPE) -> dict[str, Any]:
    """The claims of a valid, unrevoked access token (or file token: `token_type`); 401
    otherwise."""
    try:
        claims: dict[str, Any] = ctx.signer.verify(token, token_type)
    except InvalidToken as exc:
        code = "token_expired" if str(exc) == "expired" else "invalid_token"
        raise Unauthorized(f"the {token_type} token is not valid: {exc}", code=code) from None
    if claims["sid"] in ctx.revoked:
        raise Unauthorized("the session has ended: sign in again", code="session_ended")
    return claims
