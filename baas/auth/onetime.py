"""Single-use, expiring tokens: email verification, password reset, email change, sign-in
challenges and first-run setup.

A token is 256 random bits sent to its owner (a link, or the answer to sign-in); only its SHA-256
is stored. Issuing a token replaces the subject's earlier unused ones of that kind (the newest
link is the one that works), except sign-in challenges: two devices may be signing in at once.
Redeeming is one `UPDATE ... WHERE used IS NULL RETURNING`: of any number of concurrent
redemptions, exactly one gets the row.

Every refusal answers `400 invalid_token` with the one REFUSED_MESSAGE message; the reason
(unknown, expired, used, out of attempts) goes to the debug log, never the token.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from baas.auth.crypto import new_token, token_hash
from baas.auth.tokens import REFUSED_MESSAGE
from baas.db.pool import Executor
from baas.errors import ApiError

log = logging.getLogger("baas.auth.onetime")

MAX_TOKEN_LENGTH = 200


class InvalidLinkToken(ApiError):
    """A one-time token refused: the client learns only that; `reason` goes to the debug log."""

    status, code = 400, "invalid_token"

    def __init__(self, reason: str) -> None:
        log.debug("refused a one-time token: %s", reason)
        super().__init__(REFUSED_MESSAGE)


async def issue(
    ex: Executor,
    kind: str,
    subject: str | None,
    ttl_s: int,
    *,
    email: str | None = None,
    data: dict[str, Any] | None = None,
) -> str:
    token = new_token()
    await ex.execute(
        "WITH old AS (UPDATE baas.auth_tokens SET used = now() "
        "WHERE subject = $3 AND kind = $2 AND used IS NULL AND $3 IS NOT NULL AND $2 <> 'mfa') "
        "INSERT INTO baas.auth_tokens (hash, kind, subject, email, data, expires) "
        "VALUES ($1, $2, $3, $4, $5, now() + $6)",
        token_hash(token),
        kind,
        subject,
        email,
        data,
        timedelta(seconds=ttl_s),
    )
    return token


def _presented(token: Any, what: str) -> bytes:
    """The hash a presented token is looked up by; 400 if it cannot be one of ours."""
    if not isinstance(token, str) or not 20 <= len(token) <= MAX_TOKEN_LENGTH:
        raise InvalidLinkToken(f"the {what} is missing or malformed")
    return token_hash(token)


async def redeem(ex: Executor, kind: str, token: Any) -> Any:
    """The token's row (subject, email, data), consumed; InvalidLinkToken if it is unknown,
    expired or already used."""
    row = await ex.fetchrow(
        "UPDATE baas.auth_tokens SET used = now() "
        "WHERE hash = $1 AND kind = $2 AND used IS NULL AND expires > now() "
        "RETURNING subject, email, data",
        _presented(token, "token"),
        kind,
    )
    if row is None:
        raise InvalidLinkToken(f"no unused, unexpired {kind} token matches")
    return row


async def attempt(ex: Executor, kind: str, token: Any, max_attempts: int) -> Any:
    """Count an attempt at answering a challenge without consuming it; its row, or
    InvalidLinkToken once it is unknown, expired, used or out of attempts."""
    row = await ex.fetchrow(
        "UPDATE baas.auth_tokens SET attempts = attempts + 1 "
        "WHERE hash = $1 AND kind = $2 AND used IS NULL AND expires > now() "
        "AND attempts < $3 RETURNING subject, email, data, attempts",
        _presented(token, "challenge token"),
        kind,
        max_attempts,
    )
    if row is None:
        raise InvalidLinkToken(f"no unused, unexpired {kind} challenge with attempts left matches")
    return row
