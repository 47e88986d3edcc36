"""Signing in with an OpenID Connect ID token (Apple, Google, any configured provider).

Accounts at providers are identities keyed by (provider, subject), never by email: an address
can change hands at a provider, a subject cannot. In order:
1. a known identity signs its user in (a caller already signed in as someone else gets a 409);
2. a signed-in caller (an anonymous user, typically) links the identity to their account and
   keeps their id and data;
3. an address the provider says is verified links to the account that has it; if that account
   never verified its address, its password is cleared and its sessions end, so whoever
   pre-registered somebody else's address keeps no way in;
4. otherwise a new account is created (through the users create rule, like any sign-up).
An address the provider has not verified never links or creates an account.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from baas.auth import mfa, ratelimit, sessions
from baas.auth.flows import complete_sign_in, ip_limit
from baas.auth.identity import ANONYMOUS, Identity
from baas.auth.oidc import IdClaims
from baas.auth.sessions import Client
from baas.auth.users import by_email, by_id, users_collection, users_table
from baas.context import AppContext
from baas.db.pool import Executor
from baas.errors import ApiError, Conflict, Forbidden, InvalidParameter
from baas.records import service as records
from baas.schema.auth_collection import AUTH_COLLECTION
from baas.schema.emails import InvalidEmail, email_address

log = logging.getLogger("baas.auth")

MAX_NAME = 200


class EmailNotVerified(ApiError):
    status, code = 401, "email_not_verified"


async def sign_in_with_id_token(
    ctx: AppContext, identity: Identity, provider: str, body: Any, client: Client
) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
        raise InvalidParameter('send {"id_token": "...", "nonce": "..."}', code="invalid_body")
    nonce = body.get("nonce")
    if nonce is not None and (not isinstance(nonce, str) or not 0 < len(nonce) <= 512):
        raise InvalidParameter("nonce must be a string of at most 512 characters")
    await ratelimit.hit(ctx.db, [ip_limit(ctx, "rate.sign_in_ip", client)], "sign-in")
    claims = _stored_email(
        await ctx.oidc.verify(ctx.runtime["auth.oidc"], provider, body["id_token"], nonce)
    )
    current = identity.id if identity.kind == "user" else None
    for retry in (False, True):
        try:
            async with ctx.db.transaction() as tx:
                user_id, claimed = await _resolve(ctx, tx, claims, current)
                user = await by_id(tx, user_id)
            break
        except ApiError as exc:  # a concurrent first sign-in (a double tap) created it: find it
            if retry or exc.code != "unique_violation":
                raise
    if user is None or user["disabled"]:
        raise Forbidden("this account is disabled", code="account_disabled")
    if claimed:  # the squatter's sessions ended: refuse their tokens here at once
        await ctx.revoked.reload(ctx.db, user_id)
    ctx.mailer.wake()
    return await complete_sign_in(ctx, user_id, "user", ["oidc"], client)


def _stored_email(claims: IdClaims) -> IdClaims:
    """The provider's address in the form accounts store it (the one check every address
    passes); a claim that is no address is dropped: it neither links nor names an account."""
    if claims.email is None:
        return claims
    try:
        return replace(claims, email=email_address(claims.email).lower())
    except InvalidEmail:
        log.info("provider %s sent an email claim that is not an address: ignored", claims.provider)
        return replace(claims, email=None, email_verified=False)


async def _resolve(
    ctx: AppContext, tx: Executor, claims: IdClaims, current: str | None
) -> tuple[str, bool]:
    """The user this identity signs in as, and whether a never-verified account was claimed."""
    linked = await tx.fetchval(
        "UPDATE baas.identities SET last_sign_in = now(), email = coalesce($3, email) "
        "WHERE provider = $1 AND subject = $2 RETURNING user_id",
        claims.provider,
        claims.subject,
        claims.email if claims.email_verified else None,
    )
    if linked is not None:
        if current is not None and current != linked:
            raise Conflict("this provider account is linked to another user", code="identity_taken")
        return str(linked), False
    if current is not None:
        await _link_current(tx, claims, current)
        return current, False
    if claims.email is not None and not claims.email_verified:
        raise EmailNotVerified(
            f"{claims.provider} has not verified this email address: verify it there first"
        )
    if claims.email is not None:
        existing = await by_email(tx, claims.email)
        if existing is not None:
            if existing["disabled"]:  # before anything changes on it
                raise Forbidden("this account is disabled", code="account_disabled")
            return str(existing["id"]), await _link_by_email(tx, claims, existing)
    return await _create(ctx, tx, claims), False


async def _add_identity(tx: Executor, claims: IdClaims, user_id: str) -> None:
    await tx.execute(
        "INSERT INTO baas.identities (provider, subject, user_id, email) VALUES ($1, $2, $3, $4)",
        claims.provider,
        claims.subject,
        user_id,
        claims.email if claims.email_verified else None,
    )


async def _link_current(tx: Executor, claims: IdClaims, user_id: str) -> None:
    """Link to the signed-in caller; an anonymous caller becomes a regular account, taking the
    provider's verified address if no other account has it."""
    await _add_identity(tx, claims, user_id)
    email = claims.email if claims.email_verified else None
    if email is not None and await by_email(tx, email) is not None:
        email = None
    await tx.execute(
        f"UPDATE {users_table()} SET anonymous = false, "
        "email = coalesce(email, $2), verified = verified OR ($2 IS NOT NULL AND email IS NULL) "
        "WHERE id = $1 AND anonymous",
        user_id,
        email,
    )


async def _link_by_email(tx: Executor, claims: IdClaims, user: Any) -> bool:
    """Link to the account with the provider's verified address; True if that account had never
    proven it, and so was taken from whoever set it up."""
    await _add_identity(tx, claims, user["id"])
    if user["verified"]:
        return False
    # The address was never proven by whoever set the password: that person loses access.
    await tx.execute(
        f"UPDATE {users_table()} SET password_hash = NULL, verified = true WHERE id = $1",
        user["id"],
    )
    # So does all they attached: other identities, a second factor, pending links and challenges.
    await tx.execute(
        "DELETE FROM baas.identities WHERE user_id = $1 AND (provider, subject) <> ($2, $3)",
        user["id"],
        claims.provider,
        claims.subject,
    )
    await mfa.disable(tx, user["id"])
    await tx.execute(
        "UPDATE baas.auth_tokens SET used = now() WHERE subject = $1 AND used IS NULL", user["id"]
    )
    await sessions.revoke_all(tx, user["id"], "email_claimed_by_provider")
    return True


async def _create(ctx: AppContext, tx: Executor, claims: IdClaims) -> str:
    if users_collection(ctx).rules.create is None:
        raise Forbidden("sign-up is closed on this server", code="sign_up_closed")
    fields: dict[str, Any] = {}
    c = users_collection(ctx)
    name_field = c.field("name")
    if claims.name and name_field is not None and name_field.type == "text":
        fields["name"] = claims.name[: int(name_field.max or MAX_NAME)]
    system: dict[str, Any] = {"verified": claims.email is not None}
    if claims.email is not None:
        system["email"] = claims.email
    row = await records.create_with_system_fields(
        ctx, ANONYMOUS, AUTH_COLLECTION, fields, system, tx
    )
    await _add_identity(tx, claims, row["id"])
    return str(row["id"])


async def identities(ctx: AppContext, user_id: str) -> list[Any]:
    rows = await ctx.db.fetch(
        "SELECT provider, email, created, last_sign_in FROM baas.identities "
        "WHERE user_id = $1 ORDER BY provider",
        user_id,
    )
    return [dict(r) for r in rows]
