"""Bearer tokens -> Identity, from memory only (the request middleware calls this per request).

A bearer is a service key (`baas_sk_...`) or an access token (a JWT of this install). No header
means anonymous; a header that is present but wrong is a 401, never a silent downgrade to
anonymous, so a client with an expired or mistyped credential finds out at once.

Every refusal says the same (`invalid_token` with `REFUSED_MESSAGE`; `token_expired` and
`session_ended` keep their own codes): which check failed would help only someone forging tokens.
The reason goes to the debug log, never the token.

A revoked session's access tokens are refused on every request, however recently verified.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from baas.auth.identity import ANONYMOUS, Identity
from baas.auth.keys import PREFIX
from baas.auth.sessions import identity_from_claims
from baas.auth.tokens import (
    EXPIRED_MESSAGE,
    REFUSED_MESSAGE,
    TOKEN_TYPE,
    InvalidToken,
    TokenExpired,
)
from baas.errors import Unauthorized

log = logging.getLogger("baas.auth.bearer")

MAX_TOKEN_LENGTH = 4096


def refused(reason: str, kind: str = "bearer") -> Unauthorized:
    """The one 401 invalid_token answer; `reason` (never the token) goes to the debug log."""
    log.debug("refused (%s): %s", kind, reason)
    return Unauthorized(REFUSED_MESSAGE, code="invalid_token")


def authenticate(scope: MutableMapping[str, Any], header: str | None) -> Identity:
    if header is None:
        return ANONYMOUS
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise refused("the Authorization header is not 'Bearer <token>'")
    ctx = scope["state"]["ctx"]
    return identify_bearer(ctx, token)


def identify_bearer(ctx: Any, token: str) -> Identity:
    """The identity of a service key or an access token; 401 otherwise."""
    if token.startswith(PREFIX):
        found = ctx.keys.identify(token)
        if found is None:
            raise refused("unknown or revoked key", "service key")
        return found  # type: ignore[no-any-return]
    return identify_access_token(ctx, token)


def identify_access_token(ctx: Any, token: str) -> Identity:
    """The identity of a valid, unrevoked access token; 401 otherwise."""
    return identity_from_claims(access_claims(ctx, token))


def access_claims(ctx: Any, token: str, token_type: str = TOKEN_TYPE) -> dict[str, Any]:
    """The claims of a valid, unrevoked access token (or file token: `token_type`); 401
    otherwise."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise refused(f"longer than {MAX_TOKEN_LENGTH} characters", f"{token_type} token")
    try:
        claims: dict[str, Any] = ctx.signer.verify(token, token_type)
    except TokenExpired:
        raise Unauthorized(EXPIRED_MESSAGE, code="token_expired") from None
    except InvalidToken as exc:
        raise refused(str(exc), f"{token_type} token") from None
    if claims["sid"] in ctx.revoked:
        raise Unauthorized("the session has ended: sign in again", code="session_ended")
    return claims
