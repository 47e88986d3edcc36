"""Superusers: the console's administrators, in their own table, never in `users`.

They are created with `baas superuser create`, through the admin API by another admin, or by the
first-run flow: while no superuser exists, the server keeps a one-time setup token in
`<data_dir>/setup-token` (mode 0600, never logged) and `POST /api/admin/setup` with that token
creates the first one. Their sign-in works like a user's (rate limits, second factor, sessions),
and their access tokens carry `role: superuser`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from baas.auth import onetime, passwords, ratelimit
from baas.auth.crypto import token_hash
from baas.auth.flows import (
    InvalidCredentials,
    account_limit,
    complete_sign_in,
    ip_limit,
    password_text,
    upgrade_hash,
)
from baas.auth.sessions import Client
from baas.auth.users import check_password, normal_email, strong_password
from baas.context import AppContext
from baas.db.errors import UniqueViolation
from baas.db.pool import Database
from baas.errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
)
from baas.schema.ids import record_id

log = logging.getLogger("baas.auth")

SETUP_FILE = "setup-token"
SETUP_TTL_S = 7 * 86_400
_LOCK_KEY = 0x6261_6173_0003


async def create(db: Database, email: Any, password: Any, min_length: int = 8) -> dict[str, Any]:
    email = normal_email(email)
    password_hash = await passwords.hash_password(strong_password(password, min_length, email))
    try:
        row = await db.fetchrow(
            "INSERT INTO baas.superusers (email, password_hash) VALUES ($1, $2) "
            "RETURNING id, email, created",
            email,
            password_hash,
        )
    except UniqueViolation:
        raise Conflict("a superuser with this email exists", code="email_taken") from None
    assert row is not None
    return dict(row)


async def list_all(db: Database) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, email, created, last_sign_in FROM baas.superusers ORDER BY created"
    )
    return [dict(r) for r in rows]


async def delete(db: Database, raw_id: str, by: str | None = None) -> str:
    """Delete a superuser (never the last one, nor yourself: the console would lock you out);
    its id."""
    superuser_id = record_id(raw_id)
    if superuser_id is None:
        raise NotFound("no superuser with this id", code="superuser_not_found")
    if by == superuser_id:
        raise Forbidden("you cannot delete yourself", code="cannot_delete_self")
    async with db.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        row = await tx.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE id = $1) AS found "
            "FROM baas.superusers",
            superuser_id,
        )
        assert row is not None
        if not row["found"]:
            raise NotFound("no superuser with this id", code="superuser_not_found")
        if row["total"] <= 1:
            raise Conflict("the last superuser cannot be deleted", code="last_superuser")
        await tx.execute("DELETE FROM baas.superusers WHERE id = $1", superuser_id)
        await tx.execute("SELECT baas.revoke_sessions($1, 'superuser_deleted')", superuser_id)
    return superuser_id


async def sign_in(ctx: AppContext, body: Any, client: Client) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidParameter("send a JSON object", code="invalid_body")
    email = normal_email(body.get("email"))
    password = password_text(body.get("password"))
    await ratelimit.hit(
        ctx.db,
        [
            ip_limit(ctx, "rate.sign_in_ip", client),
            account_limit(ctx, "rate.sign_in_account", "superuser:" + email),
        ],
        "sign-in",
    )
    row = await ctx.db.fetchrow(
        "SELECT id, password_hash FROM baas.superusers WHERE email = $1", email
    )
    ok, rehash = await passwords.verify_password(row["password_hash"] if row else None, password)
    if not ok or row is None:
        raise InvalidCredentials("the email or password is wrong")
    if rehash:
        await upgrade_hash(ctx.db, "baas.superusers", row["id"], row["password_hash"], password)
    return await complete_sign_in(ctx, row["id"], "superuser", ["pwd"], client)


# -- first run -----------------------------------------------------------------------------------


async def prepare_setup(db: Database, data_dir: Path) -> Path | None:
    """While there is no superuser, make sure a setup token exists in the data dir; its path."""
    path = data_dir / SETUP_FILE
    async with db.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        if await tx.fetchval("SELECT EXISTS (SELECT 1 FROM baas.superusers)"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return None
        if path.exists() and await _valid(tx, path):
            return path
        token = await onetime.issue(tx, "setup", None, SETUP_TTL_S)
        await tx.execute(
            "UPDATE baas.auth_tokens SET used = now() WHERE kind = 'setup' AND used IS NULL "
            "AND hash <> $1",
            token_hash(token),
        )
        _write_private(path, token)
    return path


async def _valid(tx: Any, path: Path) -> bool:
    token = path.read_text(encoding="ascii").strip()  # noqa: ASYNC240 - a few bytes, once at start
    found = await tx.fetchval(
        "SELECT 1 FROM baas.auth_tokens WHERE hash = $1 AND kind = 'setup' AND used IS NULL "
        "AND expires > now()",
        token_hash(token),
    )
    return found is not None


def _write_private(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)


async def complete_setup(ctx: AppContext, body: Any, client: Client) -> dict[str, Any]:
    """Create the first superuser with the setup token; signs them in."""
    if not isinstance(body, dict):
        raise InvalidParameter("send a JSON object", code="invalid_body")
    await ratelimit.hit(ctx.db, [ip_limit(ctx, "rate.sign_in_ip", client)], "setup")
    email = normal_email(body.get("email"))
    password = check_password(ctx, body.get("password"), email)
    password_hash = await passwords.hash_password(password)
    async with ctx.db.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        if await tx.fetchval("SELECT EXISTS (SELECT 1 FROM baas.superusers)"):
            raise Conflict("setup is already done: sign in instead", code="setup_done")
        await onetime.redeem(tx, "setup", body.get("token"))
        subject = await tx.fetchval(
            "INSERT INTO baas.superusers (email, password_hash) VALUES ($1, $2) RETURNING id",
            email,
            password_hash,
        )
    with contextlib.suppress(FileNotFoundError):
        (ctx.settings.data_dir / SETUP_FILE).unlink()
    log.info("first superuser created through setup")
    return await complete_sign_in(ctx, subject, "superuser", ["pwd"], client)
