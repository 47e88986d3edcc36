"""Bearer tokens -> Identity, from memory only (the request middleware calls this per request).

No header means anonymous; a header that is present but wrong is a 401, never a silent downgrade
to anonymous, so a client with an expired or mistyped credential finds out at once.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from baas.auth.identity import ANONYMOUS, Identity
from baas.auth.keys import PREFIX
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
    raise Unauthorized("the token is not valid", code="invalid_token")
