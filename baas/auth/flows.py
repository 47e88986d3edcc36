"""Signing in and out: sign-up, sign-in, anonymous sign-in, the second-factor challenge, refresh
and sign-out. Every path that ends in a session goes through `complete_sign_in`, so a second
factor, once enabled, guards password, OpenID Connect and superuser sign-ins alike.

No account enumeration: with verification required (the default), sign-up answers 202 whether or
not the address has an account (an existing owner gets an "already registered" email instead);
sign-in answers the same 401 for an unknown address and a wrong password, after the same argon2
work; reset and verification requests always answer 202.
"""

from __future__ import annotations

from typing import Any

from baas.auth import mfa, onetime, passwords, ratelimit, sessions
from baas.auth.identity import ANONYMOUS, Identity
from baas.auth.sessions import Client
from baas.auth.users import (
    by_email,
    by_id,
    check_password,
    email_taken,
    me,
    normal_email,
    users_collection,
    users_table,
)
from baas.context import AppContext
from baas.db.errors import UniqueViolation
from baas.db.pool import Executor
from baas.errors import (
    ApiError,
    Conflict,
    Forbidden,
    InvalidParameter,
    Unauthorized,
    ValidationFailed,
    field_error,
)
from baas.records import service as records
from baas.schema.auth_collection import AUTH_COLLECTION

MAX_SESSIONS = 100  # per account: the oldest ends when a new one would exceed it


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


def ip_limit(ctx: AppContext, setting: str, client: Client) -> tuple[str, Any]:
    return (f"{setting}:ip:{client.ip or '-'}", ctx.runtime[setting])


def account_limit(ctx: AppContext, setting: str, email: str) -> tuple[str, Any]:
    return (f"{setting}:acct:{ctx.box.mac(email)}", ctx.runtime[setting])


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidParameter("send a JSON object", code="invalid_body")
    return dict(body)


def password_text(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > passwords.MAX_PASSWORD_LENGTH:
        raise InvalidCredentials("the email or password is wrong")
    return value


# -- sessions out --------------------------------------------------------------------------------


async def grant(
    ctx: AppContext,
    subject: str,
    role: str,
    amr: list[str],
    client: Client,
) -> dict[str, Any]:
    """Start a session: tokens, and the account as its owner sees it."""
    async with ctx.db.transaction() as tx:
        tokens = await sessions.start_session(
            tx, ctx.signer, ctx.box, ctx.runtime, subject, role, amr, client
        )
        await sessions.enforce_cap(tx, subject, MAX_SESSIONS)
        table = users_table() if role == "user" else "baas.superusers"
        await tx.execute(f"UPDATE {table} SET last_sign_in = now() WHERE id = $1", subject)
        if role == "user":
            account = await me(ctx, subject, tx)
        else:
            account = await superuser_view(tx, subject)
    body = tokens.body(ctx.runtime["auth.access_token_ttl"])
    body["user" if role == "user" else "superuser"] = account
    return body


async def superuser_view(ex: Executor, subject: str) -> dict[str, Any]:
    row = await ex.fetchrow(
        "SELECT id, email, created, last_sign_in FROM baas.superusers WHERE id = $1", subject
    )
    return dict(row) if row else {"id": subject}


async def complete_sign_in(
    ctx: AppContext,
    subject: str,
    role: str,
    amr: list[str],
    client: Client,
) -> dict[str, Any]:
    """A session, or a second-factor challenge when the account has one enabled."""
    if await mfa.enabled(ctx.db, subject):
        token = await onetime.issue(
            ctx.db,
            "mfa",
            subject,
            ctx.runtime["auth.mfa_ttl"],
            data={"role": role, "amr": amr},
        )
        return {
            "mfa_required": True,
            "mfa_token": token,
            "methods": ["totp", "recovery_code"],
            "expires_in": ctx.runtime["auth.mfa_ttl"],
        }
    return await grant(ctx, subject, role, amr, client)


async def answer_challenge(ctx: AppContext, body: Any, client: Client) -> dict[str, Any]:
    """Finish a sign-in with a TOTP code or a recovery code."""
    body = _object(body)
    challenge = await onetime.attempt(
        ctx.db, "mfa", body.get("mfa_token"), mfa.MAX_CHALLENGE_ATTEMPTS
    )
    subject = challenge["subject"]
    await ratelimit.hit(ctx.db, [(f"mfa:{subject}", ctx.runtime["rate.mfa"])], "second-factor")
    data = challenge["data"] or {}
    async with ctx.db.transaction() as tx:
        if data.get("role", "user") == "user":
            user = await by_id(tx, subject)
            if user is None or user["disabled"]:  # disabled since the first factor was checked
                raise Forbidden("this account is disabled", code="account_disabled")
        method = await mfa.check(tx, ctx.box, subject, body.get("code"), body.get("recovery_code"))
        await onetime.redeem(tx, "mfa", body.get("mfa_token"))
    amr = [*data.get("amr", []), method]
    return await grant(ctx, subject, data.get("role", "user"), amr, client)


# -- sign-up, sign-in -----------------------------------------------------------------------------


async def sign_in(ctx: AppContext, body: Any, client: Client) -> dict[str, Any]:
    body = _object(body)
    email = normal_email(body.get("email"))
    password = password_text(body.get("password"))
    await ratelimit.hit(
        ctx.db,
        [
            ip_limit(ctx, "rate.sign_in_ip", client),
            account_limit(ctx, "rate.sign_in_account", email),
        ],
        "sign-in",
    )
    user = await by_email(ctx.db, email)
    ok, rehash = await passwords.verify_password(user["password_hash"] if user else None, password)
    if not ok or user is None:
        raise InvalidCredentials("the email or password is wrong")
    if user["disabled"]:
        raise Forbidden("this account is disabled", code="account_disabled")
    if ctx.runtime["auth.require_verification"] and not user["verified"]:
        raise Forbidden(
            "confirm your email address first (POST /api/auth/verification sends a new link)",
            code="email_not_verified",
        )
    if rehash:
        await upgrade_hash(ctx.db, users_table(), user["id"], user["password_hash"], password)
    return await complete_sign_in(ctx, user["id"], "user", ["pwd"], client)


async def upgrade_hash(ex: Executor, table: str, subject: str, old: str, password: str) -> None:
    """Rehash a password verified under older argon2 parameters, as soon as it is verified (a
    second factor may follow); only if the hash is still the one verified."""
    await ex.execute(
        f"UPDATE {table} SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
        subject,
        old,
        await passwords.hash_password(password),
    )


def _sign_up_open(ctx: AppContext) -> None:
    if users_collection(ctx).rules.create is None:
        raise Forbidden("sign-up is closed on this server", code="sign_up_closed")


async def sign_up(
    ctx: AppContext, identity: Identity, body: Any, client: Client
) -> tuple[int, dict[str, Any]]:
    """(status, body): 202 when the address must be confirmed first, 201 with a session
    otherwise. An anonymous user signing up keeps their id and data."""
    fields = _object(body)
    email = normal_email(fields.pop("email", None))
    password = check_password(ctx, fields.pop("password", None), email)
    if "id" in fields:
        raise InvalidParameter("the server chooses a user's id", code="invalid_body")
    _sign_up_open(ctx)
    await ratelimit.hit(ctx.db, [ip_limit(ctx, "rate.sign_up_ip", client)], "sign-up")
    password_hash = await passwords.hash_password(password)
    if identity.kind == "user" and identity.id:
        return await _upgrade_anonymous(ctx, identity.id, email, password_hash, fields, client)
    require = ctx.runtime["auth.require_verification"]
    system = {"email": email, "password_hash": password_hash, "verified": False}
    try:
        async with ctx.db.transaction() as tx:
            row = await records.create_with_system_fields(
                ctx, ANONYMOUS, AUTH_COLLECTION, fields, system, tx
            )
            await links_mail(ctx, tx, "verify", row["id"], email)
    except ApiError as exc:
        if not _is_email_taken(exc):
            raise
        if not require:
            raise email_taken() from None
        await _already_registered(ctx, email)
        return 202, {"verification_required": True}
    finally:
        ctx.mailer.wake()
    if require:
        return 202, {"verification_required": True}
    return 201, await complete_sign_in(ctx, row["id"], "user", ["pwd"], client)


def _is_email_taken(exc: ApiError) -> bool:
    return exc.code == "unique_violation" and "email" in exc.fields


async def _already_registered(ctx: AppContext, email: str) -> None:
    """Tell an address's owner someone tried to sign up with it (at most a few times an hour)."""
    try:
        await ratelimit.hit(ctx.db, [account_limit(ctx, "rate.email_account", email)], "email")
    except ratelimit.RateLimited:
        return  # the answer must not differ from a new sign-up's
    async with ctx.db.transaction() as tx:
        await ctx.mailer.queue(
            tx,
            "already_registered",
            email,
            {"email": email, "sign_in_link": "", "reset_link": ""},
        )


async def _upgrade_anonymous(
    ctx: AppContext,
    user_id: str,
    email: str,
    password_hash: str,
    fields: dict[str, Any],
    client: Client,
) -> tuple[int, dict[str, Any]]:
    if fields:
        raise InvalidParameter(
            "an anonymous user signing up sends only email and password; update other fields "
            "through the records API",
            code="invalid_body",
        )
    require = ctx.runtime["auth.require_verification"]
    async with ctx.db.transaction() as tx:
        user = await by_id(tx, user_id, lock=True)
        if user is None or not user["anonymous"]:
            raise Conflict(
                "this account already has credentials: sign out to create another",
                code="already_registered",
            )
        if require:  # the address is set when its owner confirms it
            await tx.execute(
                f"UPDATE {users_table()} SET password_hash = $2 WHERE id = $1",
                user_id,
                password_hash,
            )
            await links_mail(ctx, tx, "email_change", user_id, email, template="verify")
        else:
            try:
                await tx.execute(
                    f"UPDATE {users_table()} SET email = $2, password_hash = $3, "
                    "anonymous = false WHERE id = $1",
                    user_id,
                    email,
                    password_hash,
                )
            except UniqueViolation:
                raise email_taken() from None
            await links_mail(ctx, tx, "verify", user_id, email)
    ctx.mailer.wake()
    if require:
        return 202, {"verification_required": True}
    return 200, {"user": await me(ctx, user_id)}


async def sign_in_anonymously(ctx: AppContext, client: Client) -> dict[str, Any]:
    if not ctx.runtime["auth.anonymous"]:
        raise Forbidden("anonymous sign-in is turned off", code="anonymous_disabled")
    _sign_up_open(ctx)
    await ratelimit.hit(ctx.db, [ip_limit(ctx, "rate.sign_up_ip", client)], "sign-up")
    row = await records.create_with_system_fields(
        ctx, ANONYMOUS, AUTH_COLLECTION, {}, {"anonymous": True}
    )
    return await grant(ctx, row["id"], "user", ["anonymous"], client)


# -- refresh, sign-out -----------------------------------------------------------------------------


async def refresh(ctx: AppContext, body: Any) -> dict[str, Any]:
    token = _refresh_token(_object(body))
    try:
        tokens = await sessions.refresh(ctx.db, ctx.signer, ctx.box, ctx.runtime, token)
    except sessions.RefreshRefused as exc:
        if exc.code == "refresh_token_reused":  # the session's access tokens stop here at once
            await ctx.revoked.reload(ctx.db)
        raise
    return tokens.body(ctx.runtime["auth.access_token_ttl"])


def _refresh_token(body: dict[str, Any]) -> str:
    """The refresh token a refresh sends; 400 when it is missing or not a string (a string that
    is no live token is the 401 `invalid_refresh_token`)."""
    token = body.get("refresh_token")
    wanted = "send the refresh_token that sign-in (or the last refresh) returned"
    if token is None:
        raise ValidationFailed(
            {"refresh_token": field_error("required", f"the refresh token is missing: {wanted}")}
        )
    if not isinstance(token, str):
        raise ValidationFailed(
            {"refresh_token": field_error("invalid_type", f"must be a string: {wanted}")}
        )
    return token


async def sign_out(ctx: AppContext, identity: Identity, body: Any) -> None:
    """End the caller's session (by its access token, or by a refresh token in the body)."""
    if identity.session and identity.id:
        await sessions.revoke_session(ctx.db, identity.id, identity.session, "signed_out")
        await ctx.revoked.reload(ctx.db, identity.id)
        return
    token = body.get("refresh_token") if isinstance(body, dict) else None
    if not isinstance(token, str):
        raise Unauthorized("send the access token, or the refresh token in the body")
    subject = await sessions.revoke_by_refresh_token(ctx.db, token)
    if subject is not None:
        await ctx.revoked.reload(ctx.db, subject)


# -- email links (here because sign-up sends them too) --------------------------------------------

LINK_PATHS = {
    "verify": "verify-email",
    "reset": "reset-password",
    "email_change": "confirm-email",
}
TTL_SETTINGS = {
    "verify": "auth.verify_ttl",
    "reset": "auth.reset_ttl",
    "email_change": "auth.email_change_ttl",
}


def link(ctx: AppContext, kind: str, token: str) -> str:
    base = ctx.runtime["auth.link_base"] or f"{ctx.settings.base_url}/auth"
    return f"{base}/{LINK_PATHS[kind]}?token={token}"


def human_duration(seconds: int) -> str:
    if seconds % 86_400 == 0:
        days = seconds // 86_400
        return f"{days} day{'s' if days != 1 else ''}"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


async def links_mail(
    ctx: AppContext,
    ex: Executor,
    kind: str,
    subject: str,
    email: str,
    template: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Issue a `kind` token for `subject` and queue the email carrying its link to `email`."""
    ttl = ctx.runtime[TTL_SETTINGS[kind]]
    token = await onetime.issue(ex, kind, subject, ttl, email=email)
    context = {
        "link": link(ctx, kind, token),
        "email": email,
        "new_email": email,
        "expires_in": human_duration(ttl),
        **(extra or {}),
    }
    await ctx.mailer.queue(ex, template or kind, email, context)
