"""Looking after an account: email verification, password reset, email change, password change,
and the second factor's enrolment. Requests for a link always answer the same way (202), whether
or not the address has an account; redeeming a link is single-use (see `onetime`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from baas.auth import mfa, onetime, passwords, ratelimit, sessions
from baas.auth.flows import (
    account_limit,
    ip_limit,
    links_mail,
)
from baas.auth.identity import Identity
from baas.auth.sessions import Client
from baas.auth.users import by_email, by_id, check_password, email_taken, normal_email, users_table
from baas.context import AppContext
from baas.db.errors import UniqueViolation
from baas.errors import Conflict, Forbidden, InvalidParameter, Unauthorized


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidParameter("send a JSON object", code="invalid_body")
    return body


def signed_in_user(identity: Identity) -> str:
    if identity.kind != "user" or not identity.id:
        raise Unauthorized("sign in first (Authorization: Bearer <access token>)")
    return identity.id


async def _email_request_allowed(ctx: AppContext, email: str, client: Client) -> bool:
    """Count a link request; False when the address has had its share of mail this hour (the
    answer stays 202: whether mail went out is nobody's business but the owner's)."""
    await ratelimit.hit(ctx.db, [ip_limit(ctx, "rate.email_ip", client)], "email")
    try:
        await ratelimit.hit(ctx.db, [account_limit(ctx, "rate.email_account", email)], "email")
    except ratelimit.RateLimited:
        return False
    return True


# -- verification ------------------------------------------------------------------------------


async def request_verification(ctx: AppContext, body: Any, client: Client) -> None:
    await _request_link(ctx, body, client, "verify", lambda u: not u["verified"])


async def _request_link(
    ctx: AppContext, body: Any, client: Client, kind: str, wanted: Callable[[Any], bool]
) -> None:
    """Count the request, answer; then, if the address has an enabled account that `wanted`
    accepts, mail it a `kind` link (after the answer: its time must not tell)."""
    email = normal_email(_object(body).get("email"))
    if await _email_request_allowed(ctx, email, client):
        ctx.spawn(_send_link(ctx, kind, email, wanted), f"{kind} mail")


async def _send_link(ctx: AppContext, kind: str, email: str, wanted: Callable[[Any], bool]) -> None:
    async with ctx.db.transaction() as tx:
        user = await by_email(tx, email)
        if user is not None and not user["disabled"] and wanted(user):
            await links_mail(ctx, tx, kind, user["id"], email)
    ctx.mailer.wake()


async def confirm_verification(ctx: AppContext, body: Any) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        row = await onetime.redeem(tx, "verify", _object(body).get("token"))
        done = await tx.fetchval(
            f"UPDATE {users_table()} SET verified = true WHERE id = $1 AND email = $2 RETURNING id",
            row["subject"],
            row["email"],
        )
    if done is None:  # the account's address changed since the link was sent
        raise onetime.InvalidLinkToken("this link is for an address the account no longer has")
    return {"verified": True}


# -- password reset --------------------------------------------------------------------------


async def request_reset(ctx: AppContext, body: Any, client: Client) -> None:
    await _request_link(ctx, body, client, "reset", lambda _: True)


async def confirm_reset(ctx: AppContext, body: Any) -> dict[str, Any]:
    """Set a new password from a reset link: the address is proven, so it counts as verified;
    every session ends (whoever knew the old password is signed out)."""
    body = _object(body)
    token = body.get("token")
    password = body.get("password")
    if not isinstance(password, str):  # checked before the token is spent
        raise InvalidParameter("send the new password", code="invalid_body")
    async with ctx.db.transaction() as tx:
        row = await onetime.redeem(tx, "reset", token)
        check_password(ctx, password, row["email"])
        password_hash = await passwords.hash_password(password)
        done = await tx.fetchval(
            f"UPDATE {users_table()} SET password_hash = $3, verified = true "
            "WHERE id = $1 AND email = $2 RETURNING id",
            row["subject"],
            row["email"],
            password_hash,
        )
        if done is None:
            raise onetime.InvalidLinkToken("this link is for an address the account no longer has")
        await sessions.revoke_all(tx, row["subject"], "password_reset")
        await ctx.mailer.queue(tx, "password_changed", row["email"], {"email": row["email"]})
    await ctx.revoked.reload(ctx.db, row["subject"])
    ctx.mailer.wake()
    return {"password_reset": True}


# -- email change ----------------------------------------------------------------------------


async def request_email_change(
    ctx: AppContext, identity: Identity, body: Any, client: Client
) -> None:
    """Send a confirmation link to the new address; the change happens when it is opened.
    An account with a password must give it (a stolen access token cannot take the account)."""
    user_id = signed_in_user(identity)
    body = _object(body)
    new_email = normal_email(body.get("email"))
    await ratelimit.hit(ctx.db, [ip_limit(ctx, "rate.email_ip", client)], "email")
    user = await by_id(ctx.db, user_id)
    if user is None:
        raise Unauthorized("this account no longer exists")
    await _require_password(ctx, user, body.get("password"))
    if new_email == user["email"]:
        raise InvalidParameter("that is already the account's address", code="same_email")
    try:
        await ratelimit.hit(ctx.db, [account_limit(ctx, "rate.email_account", new_email)], "email")
    except ratelimit.RateLimited:
        return
    async with ctx.db.transaction() as tx:
        await links_mail(ctx, tx, "email_change", user_id, new_email)
    ctx.mailer.wake()


class WrongPassword(Forbidden):
    """The current password, re-entered, is wrong: 403, not 401, so that clients do not take it
    for an expired access token."""

    code = "wrong_password"


async def _require_password(ctx: AppContext, user: Any, password: Any) -> None:
    """A signed-in user re-enters their password; the guesses count like sign-ins (a stolen
    access token must not buy unlimited tries)."""
    if user["password_hash"] is None:
        return  # signed up through a provider or anonymously: nothing to re-enter
    if not isinstance(password, str) or len(password) > passwords.MAX_PASSWORD_LENGTH:
        raise WrongPassword("send the account's current password")
    limit = (f"rate.sign_in_account:user:{user['id']}", ctx.runtime["rate.sign_in_account"])
    await ratelimit.hit(ctx.db, [limit], "password")
    ok, _ = await passwords.verify_password(user["password_hash"], password)
    if not ok:
        raise WrongPassword("the current password is wrong")


async def confirm_email_change(ctx: AppContext, body: Any) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        row = await onetime.redeem(tx, "email_change", _object(body).get("token"))
        old = await by_id(tx, row["subject"], lock=True)
        if old is None:
            raise onetime.InvalidLinkToken("this account no longer exists")
        try:
            await tx.execute(
                f"UPDATE {users_table()} SET email = $2, verified = true, anonymous = false "
                "WHERE id = $1",
                row["subject"],
                row["email"],
            )
        except UniqueViolation:
            raise email_taken() from None
        if old["email"] and old["email"] != row["email"]:
            await ctx.mailer.queue(
                tx,
                "email_changed",
                old["email"],
                {"old_email": old["email"], "new_email": row["email"]},
            )
    ctx.mailer.wake()
    return {"email": row["email"], "verified": True}


# -- password change -------------------------------------------------------------------------


async def change_password(ctx: AppContext, identity: Identity, body: Any) -> None:
    """Set a new password (the current one required if there is one); every other session
    ends, this one stays signed in."""
    user_id = signed_in_user(identity)
    body = _object(body)
    user = await by_id(ctx.db, user_id)
    if user is None:
        raise Unauthorized("this account no longer exists")
    await _require_password(ctx, user, body.get("current_password"))
    password = check_password(ctx, body.get("password"), user["email"])
    password_hash = await passwords.hash_password(password)
    async with ctx.db.transaction() as tx:
        await tx.execute(
            f"UPDATE {users_table()} SET password_hash = $2 WHERE id = $1", user_id, password_hash
        )
        await sessions.revoke_all(tx, user_id, "password_changed", keep=identity.session)
        if user["email"]:
            await ctx.mailer.queue(tx, "password_changed", user["email"], {"email": user["email"]})
    await ctx.revoked.reload(ctx.db, user_id)
    ctx.mailer.wake()


# -- second factor -----------------------------------------------------------------------------


def signed_in_subject(identity: Identity) -> str:
    """A user or superuser with a session (second factors belong to both)."""
    if identity.kind not in ("user", "superuser") or not identity.id or not identity.session:
        raise Unauthorized("sign in first (Authorization: Bearer <access token>)")
    return identity.id


async def _account_name(ctx: AppContext, identity: Identity) -> str:
    if identity.kind == "superuser":
        email = await ctx.db.fetchval(
            "SELECT email FROM baas.superusers WHERE id = $1", identity.id
        )
    else:
        user = await by_id(ctx.db, signed_in_subject(identity))
        email = user["email"] if user else None
    return str(email or identity.id)


async def enroll_totp(ctx: AppContext, identity: Identity) -> dict[str, str]:
    subject = signed_in_subject(identity)
    account = await _account_name(ctx, identity)
    return await mfa.enroll(ctx.db, ctx.box, subject, account, ctx.runtime["app.name"])


async def confirm_totp(ctx: AppContext, identity: Identity, body: Any) -> dict[str, Any]:
    subject = signed_in_subject(identity)
    await ratelimit.hit(ctx.db, [(f"mfa:{subject}", ctx.runtime["rate.mfa"])], "second-factor")
    async with ctx.db.transaction() as tx:
        codes = await mfa.confirm(tx, ctx.box, subject, _object(body).get("code"))
    return {"enabled": True, "recovery_codes": codes}


async def _second_factor(ctx: AppContext, subject: str, body: dict[str, Any]) -> None:
    await ratelimit.hit(ctx.db, [(f"mfa:{subject}", ctx.runtime["rate.mfa"])], "second-factor")
    async with ctx.db.transaction() as tx:
        await mfa.check(tx, ctx.box, subject, body.get("code"), body.get("recovery_code"))


async def disable_totp(ctx: AppContext, identity: Identity, body: Any) -> None:
    """Turn the second factor off: proven with a current code or a recovery code."""
    subject = signed_in_subject(identity)
    await _second_factor(ctx, subject, _object(body))
    await mfa.disable(ctx.db, subject)


async def new_recovery_codes(ctx: AppContext, identity: Identity, body: Any) -> dict[str, Any]:
    subject = signed_in_subject(identity)
    await _second_factor(ctx, subject, _object(body))
    async with ctx.db.transaction() as tx:
        if not await mfa.enabled(tx, subject):
            raise Conflict("no second factor is enabled", code="mfa_not_enabled")
        codes = await mfa.new_recovery_codes(tx, subject)
    return {"recovery_codes": codes}
