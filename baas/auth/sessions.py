"""Sessions: a signed-in device, its rotating refresh token and the access tokens it is issued.

A session starts at sign-in with an opaque refresh token (256-bit random, stored as SHA-256).
Each refresh retires the presented token and returns a new one (`baas.refresh_session`, one round
trip). A retired token presented again revokes the session (a stolen token was replayed), except
within `auth.refresh_grace_s` of the rotation: then the current token is answered again, so an
app whose two requests raced to refresh stays signed in.

Revoking a session also stops its access tokens at once: every instance keeps the ids of sessions
revoked within the longest access-token lifetime (`RevokedSessions`, reloaded per subject on
NOTIFY `baas_sessions`), and the request middleware refuses tokens naming them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from baas.auth.crypto import SecretBox, new_token, token_hash
from baas.auth.identity import Identity, Kind
from baas.auth.tokens import MAX_ACCESS_TTL, Signer
from baas.db.pool import Database, Executor
from baas.errors import NotFound, Unauthorized
from baas.runtime_settings import RuntimeSettings

log = logging.getLogger("baas.auth.sessions")

CHANNEL = "baas_sessions"
MAX_USER_AGENT = 300
_SEAL_PURPOSE = "refresh token"
_CAP_LOCK = 0x6261_0004  # advisory lock namespace (two-key form) of per-account session caps


@dataclass(frozen=True)
class Client:
    """Where a request came from, kept with the session it starts (shown in session lists)."""

    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_at: int
    refresh_token: str
    session_id: str

    def body(self, ttl_s: int) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": ttl_s,
            "expires_at": self.expires_at,
            "refresh_token": self.refresh_token,
            "session_id": self.session_id,
        }


def access_token(
    signer: Signer, runtime: RuntimeSettings, subject: str, role: str, sid: str, amr: list[str]
) -> tuple[str, int]:
    claims = {"sub": subject, "sid": sid, "role": role, "amr": amr}
    return signer.sign(claims, runtime["auth.access_token_ttl"])


async def start_session(
    ex: Executor,
    signer: Signer,
    box: SecretBox,
    runtime: RuntimeSettings,
    subject: str,
    role: str,
    amr: list[str],
    client: Client,
) -> Tokens:
    """A new session for `subject` (in the caller's transaction, if `ex` is one)."""
    refresh = new_token()
    sid = await ex.fetchval(
        "WITH s AS (INSERT INTO baas.sessions (subject, role, amr, current_token, expires, "
        "max_expires, user_agent, ip) VALUES ($1, $2, $3, $4, now() + $5, now() + $6, $7, $8) "
        "RETURNING id) "
        "INSERT INTO baas.refresh_tokens (hash, session_id) SELECT $9, id FROM s "
        "RETURNING session_id",
        subject,
        role,
        amr,
        box.seal(refresh.encode(), _SEAL_PURPOSE),
        timedelta(seconds=runtime["auth.refresh_idle_ttl"]),
        timedelta(seconds=runtime["auth.refresh_max_ttl"]),
        (client.user_agent or "")[:MAX_USER_AGENT] or None,
        client.ip,
        token_hash(refresh),
    )
    token, exp = access_token(signer, runtime, subject, role, sid, amr)
    return Tokens(token, exp, refresh, sid)


class RefreshRefused(Unauthorized):
    code = "invalid_refresh_token"


REFRESH_REFUSED_MESSAGE = "the refresh token is not valid: sign in again"


def _invalid_refresh(reason: str) -> RefreshRefused:
    """The one answer to a refresh token that is not ours; `reason` goes to the debug log."""
    log.debug("refused a refresh token: %s", reason)
    return RefreshRefused(REFRESH_REFUSED_MESSAGE)


async def refresh(
    db: Database, signer: Signer, box: SecretBox, runtime: RuntimeSettings, presented: Any
) -> Tokens:
    """Rotate `presented`; new tokens, or 401 (reuse outside the grace window revokes)."""
    if not isinstance(presented, str) or not 20 <= len(presented) <= 200:
        raise _invalid_refresh("missing or malformed")
    new = new_token()
    row = await db.fetchrow(
        "SELECT * FROM baas.refresh_session($1, $2, $3, $4, $5)",
        token_hash(presented),
        token_hash(new),
        box.seal(new.encode(), _SEAL_PURPOSE),
        timedelta(seconds=runtime["auth.refresh_idle_ttl"]),
        timedelta(seconds=runtime["auth.refresh_grace_s"]),
    )
    assert row is not None
    outcome = row["outcome"]
    if outcome == "unknown":
        raise _invalid_refresh("unknown")
    if outcome == "revoked":
        raise RefreshRefused("the session has ended: sign in again", code="session_ended")
    if outcome == "reused":
        raise RefreshRefused(
            "this refresh token was already used: the session is ended for safety",
            code="refresh_token_reused",
        )
    if outcome == "grace":
        new = box.open(bytes(row["token"]), _SEAL_PURPOSE).decode()
    sid, subject, role, amr = row["session_id"], row["subject"], row["role"], list(row["amr"])
    token, exp = access_token(signer, runtime, subject, role, sid, amr)
    return Tokens(token, exp, new, sid)


async def revoke_session(ex: Executor, subject: str, sid: str, reason: str) -> None:
    """End one session of `subject` (404 if it is not theirs or already ended)."""
    done = await ex.fetchval(
        "WITH r AS (UPDATE baas.sessions SET revoked = now(), revoked_reason = $3, "
        "current_token = NULL WHERE id = $1 AND subject = $2 AND revoked IS NULL "
        "RETURNING subject) "
        "SELECT count(*) FROM (SELECT pg_notify($4, subject::text) FROM r) n",
        sid,
        subject,
        reason,
        CHANNEL,
    )
    if not done:
        raise NotFound("no active session with this id", code="session_not_found")


async def revoke_by_refresh_token(ex: Executor, token: str) -> str | None:
    """End the session a refresh token (current or retired) belongs to, quietly if none; the
    session's subject."""
    if not 20 <= len(token) <= 200:
        return None
    subject = await ex.fetchval(
        "WITH r AS (UPDATE baas.sessions SET revoked = now(), revoked_reason = 'signed_out', "
        "current_token = NULL WHERE id = (SELECT session_id FROM baas.refresh_tokens "
        "WHERE hash = $1) AND revoked IS NULL RETURNING subject) "
        "SELECT subject FROM (SELECT subject, pg_notify($2, subject::text) FROM r) n",
        token_hash(token),
        CHANNEL,
    )
    return str(subject) if subject is not None else None


async def enforce_cap(ex: Executor, subject: str, cap: int) -> None:
    """End the least recently used sessions of `subject` beyond `cap`. Sign-ins of one account
    take turns here: two at once would lock its old sessions in different orders (deadlock)."""
    await ex.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _CAP_LOCK, subject)
    await ex.fetchval(
        "WITH r AS (UPDATE baas.sessions SET revoked = now(), "
        "revoked_reason = 'too_many_sessions', current_token = NULL WHERE id IN "
        "(SELECT id FROM baas.sessions WHERE subject = $1 "
        "AND revoked IS NULL ORDER BY last_used DESC OFFSET $2) RETURNING subject) "
        "SELECT pg_notify($3, (SELECT subject::text FROM r LIMIT 1)) "
        "WHERE EXISTS (SELECT 1 FROM r)",
        subject,
        cap,
        CHANNEL,
    )


async def revoke_all(ex: Executor, subject: str, reason: str, keep: str | None = None) -> int:
    """End every session of `subject` (but `keep`); how many ended."""
    count = await ex.fetchval("SELECT baas.revoke_sessions($1, $2, $3)", subject, reason, keep)
    return int(count)


async def list_sessions(ex: Executor, subject: str, current: str | None = None) -> list[Any]:
    rows = await ex.fetch(
        "SELECT id, created, last_used, expires, amr, user_agent, ip FROM baas.sessions "
        "WHERE subject = $1 AND revoked IS NULL AND expires > now() AND max_expires > now() "
        "ORDER BY last_used DESC LIMIT 200",
        subject,
    )
    return [{**dict(r), "current": r["id"] == current} for r in rows]


class RevokedSessions:
    """Ids of sessions revoked recently enough that their access tokens could still be valid."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def __contains__(self, sid: object) -> bool:
        return sid in self._until

    def __len__(self) -> int:
        return len(self._until)

    async def reload(self, db: Database, subject: str | None = None) -> None:
        """All recent revocations, or those of one subject (on its NOTIFY)."""
        sql = (
            "SELECT id, extract(epoch FROM revoked) AS at FROM baas.sessions "
            "WHERE revoked > now() - make_interval(secs => $1)"
        )
        if subject is None:
            rows = await db.fetch(sql, MAX_ACCESS_TTL)
            self._until = {}
        else:
            rows = await db.fetch(sql + " AND subject = $2", MAX_ACCESS_TTL, subject)
        for r in rows:
            self._until[r["id"]] = float(r["at"]) + MAX_ACCESS_TTL
        self._prune()

    def _prune(self) -> None:
        now = time.time()
        expired = [sid for sid, until in self._until.items() if until < now]
        for sid in expired:
            del self._until[sid]


def identity_from_claims(claims: dict[str, Any]) -> Identity:
    role = claims["role"]
    kind: Kind = "superuser" if role == "superuser" else "user"
    return Identity(kind, id=claims["sub"], session=claims["sid"])
