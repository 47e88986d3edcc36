"""The users table as the auth service sees it: lookups by email and id, the caller's own view
(`/api/auth/me`), and what admins do to accounts (list, create, change, disable, delete).

Table and column names come from the validated schema (`users` and its fields), values are always
parameters. The records API shows users only their visible fields under the collection's rules;
here a user sees their own email and sign-in facts too, and admins see every account.
"""

from __future__ import annotations

from typing import Any

from baas.auth import passwords, sessions
from baas.context import AppContext
from baas.db.errors import ForeignKeyViolation, UniqueViolation
from baas.db.pool import Executor
from baas.db.sqltree import column, render, table
from baas.errors import (
    ApiError,
    Conflict,
    InvalidParameter,
    NotFound,
    ValidationFailed,
    field_error,
)
from baas.records import service as records
from baas.records.sql import output_columns
from baas.schema.auth_collection import AUTH_COLLECTION
from baas.schema.emails import EXAMPLE, InvalidEmail, email_address
from baas.schema.ids import record_id
from baas.schema.models import TABLE_SCHEMA, Collection

MAX_SEARCH = 200


def users_collection(ctx: AppContext) -> Collection:
    c = ctx.schema.collection(AUTH_COLLECTION)
    assert c is not None, "the users collection is ensured at start-up"
    return c


def users_table() -> str:
    return render(table(AUTH_COLLECTION, TABLE_SCHEMA))


def _columns(c: Collection, alias: str = "u") -> str:
    return ", ".join(render(column(name, alias)) for name in output_columns(c))


def normal_email(value: Any, field: str = "email") -> str:
    """The one stored form of an address a client sent: trimmed, checked by `email_address`
    (400 validation_failed, field code invalid_email), lower-cased (one account per address,
    whatever its case)."""
    if value is None:
        raise ValidationFailed(
            {field: field_error("required", f"an email address is required, such as {EXAMPLE}")}
        )
    if not isinstance(value, str):
        raise ValidationFailed(
            {field: field_error("invalid_type", f"must be a string such as {EXAMPLE}")}
        )
    try:
        return email_address(value.strip()).lower()
    except InvalidEmail as exc:
        raise ValidationFailed({field: field_error("invalid_email", str(exc))}) from None


def check_password(
    ctx: AppContext, password: Any, email: str | None, field: str = "password"
) -> str:
    return strong_password(password, ctx.runtime["auth.password_min_length"], email, field)


def strong_password(
    password: Any, min_length: int, email: str | None, field: str = "password"
) -> str:
    """The password, if it is acceptable; 400 validation_failed otherwise: `required` when it
    is missing, `invalid_type` when it is not text, `weak_password` when it is too weak."""
    wanted = f"a string of at least {min_length} characters"
    if password is None:
        raise ValidationFailed(
            {field: field_error("required", f"a password is required: send {field!r} as {wanted}")}
        )
    if not isinstance(password, str):
        raise ValidationFailed(
            {field: field_error("invalid_type", f"must be {wanted}, not {_json_kind(password)}")}
        )
    problem = passwords.password_problem(password, min_length, email)
    if problem:
        raise ValidationFailed({field: field_error("weak_password", problem)})
    assert isinstance(password, str)
    return password


def _json_kind(value: Any) -> str:
    """What a JSON value is, in the words of JSON."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    return "an object"


async def by_email(ex: Executor, email: str) -> Any:
    """id, password_hash, verified, disabled, anonymous of the account with this address."""
    return await ex.fetchrow(
        f"SELECT id, email, password_hash, verified, disabled, anonymous FROM {users_table()} "
        "WHERE email = $1",
        email,
    )


async def by_id(ex: Executor, user_id: str, lock: bool = False) -> Any:
    return await ex.fetchrow(
        f"SELECT id, email, password_hash, verified, disabled, anonymous FROM {users_table()} "
        f"WHERE id = $1{' FOR UPDATE' if lock else ''}",
        user_id,
    )


async def me(ctx: AppContext, user_id: str, ex: Executor | None = None) -> dict[str, Any]:
    """The signed-in user's own view: their record, email and sign-in facts, in one query."""
    c = users_collection(ctx)
    row = await (ex or ctx.db).fetchrow(
        f"SELECT {_columns(c)}, u.email, u.last_sign_in, "
        "u.password_hash IS NOT NULL AS has_password, "
        "EXISTS (SELECT 1 FROM baas.totp t WHERE t.subject = u.id AND t.confirmed IS NOT NULL) "
        "AS mfa_enabled, "
        "ARRAY(SELECT i.provider FROM baas.identities i WHERE i.user_id = u.id "
        "ORDER BY i.provider) AS providers "
        f"FROM {users_table()} u WHERE u.id = $1",
        user_id,
    )
    if row is None:
        raise NotFound("this account no longer exists", code="user_not_found")
    return dict(row)


# -- admin operations ----------------------------------------------------------------------------


def _admin_columns(c: Collection) -> str:
    return (
        f"{_columns(c)}, u.email, u.last_sign_in, u.password_hash IS NOT NULL AS has_password, "
        "(SELECT count(*) FROM baas.sessions s WHERE s.subject = u.id AND s.revoked IS NULL "
        "AND s.expires > now()) AS active_sessions"
    )


async def admin_list(
    ctx: AppContext, search: str | None, page: int, per_page: int
) -> dict[str, Any]:
    c = users_collection(ctx)
    where = ""
    args: list[Any] = [per_page, (page - 1) * per_page]
    if search:
        if len(search) > MAX_SEARCH:
            raise InvalidParameter(f"search is at most {MAX_SEARCH} characters")
        pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where = "WHERE u.email LIKE $3 || '%' OR u.id::text = $4"
        args += [pattern, search]
    sql = (
        f"SELECT {_admin_columns(c)}, count(*) OVER () AS _total FROM {users_table()} u {where} "
        "ORDER BY u.created DESC, u.id DESC LIMIT $1 OFFSET $2"
    )
    rows = await ctx.db.fetch(sql, *args)
    # Past the last page no row carries the count: ask for the first row to get it.
    counted = rows or (await ctx.db.fetch(sql, 1, 0, *args[2:]) if page > 1 else [])
    total = counted[0]["_total"] if counted else 0
    items = [{k: v for k, v in r.items() if k != "_total"} for r in rows]
    return {"items": items, "page": page, "per_page": per_page, "total": total}


async def admin_get(ctx: AppContext, raw_id: str) -> dict[str, Any]:
    c = users_collection(ctx)
    row = await ctx.db.fetchrow(
        f"SELECT {_admin_columns(c)} FROM {users_table()} u WHERE u.id = $1", _id(raw_id)
    )
    if row is None:
        raise _no_user()
    return dict(row)


def _id(raw_id: str) -> str:
    rid = record_id(raw_id)
    if rid is None:
        raise _no_user()
    return rid


def _no_user() -> NotFound:
    return NotFound("no user with this id", code="user_not_found")


async def admin_create(ctx: AppContext, identity: Any, body: Any) -> dict[str, Any]:
    """Create an account with email, password (optional: the user can reset it) and fields."""
    if not isinstance(body, dict):
        raise InvalidParameter("send a JSON object", code="invalid_body")
    fields = dict(body)
    email = normal_email(fields.pop("email", None))
    password = fields.pop("password", None)
    verified = fields.pop("verified", False)
    if not isinstance(verified, bool):
        raise ValidationFailed({"verified": field_error("invalid_type", "must be true or false")})
    system: dict[str, Any] = {"email": email, "verified": verified}
    if password is not None:
        system["password_hash"] = await passwords.hash_password(
            check_password(ctx, password, email)
        )
    try:
        row = await records.create_with_system_fields(
            ctx, identity, AUTH_COLLECTION, fields, system
        )
    except ApiError as exc:
        raise _email_taken(exc) from None
    return await admin_get(ctx, row["id"])


def _email_taken(exc: ApiError) -> ApiError:
    """A records-layer unique violation on email, as the auth API words it."""
    if exc.code == "unique_violation" and "email" in exc.fields:
        return email_taken()
    return exc


def email_taken() -> Conflict:
    return Conflict("an account with this email already exists", code="email_taken")


async def admin_update(ctx: AppContext, raw_id: str, body: Any) -> dict[str, Any]:
    """Change an account's email, password, verified or disabled flag (disabling ends its
    sessions at once; a new password ends them too)."""
    user_id = _id(raw_id)
    if not isinstance(body, dict) or not body:
        raise InvalidParameter(
            "send an object with email, password, verified and/or disabled", code="invalid_body"
        )
    unknown = set(body) - {"email", "password", "verified", "disabled"}
    if unknown:
        raise ValidationFailed(
            {
                k: field_error("unknown_field", "edit other fields through the records API")
                for k in sorted(unknown)
            }
        )
    sets: dict[str, Any] = {}
    for flag in ("verified", "disabled"):
        if flag in body:
            if not isinstance(body[flag], bool):
                raise ValidationFailed({flag: field_error("invalid_type", "must be true or false")})
            sets[flag] = body[flag]
    if "email" in body:
        sets["email"] = normal_email(body["email"])
    if "password" in body:
        email = sets.get("email") or await ctx.db.fetchval(
            f"SELECT email FROM {users_table()} WHERE id = $1", user_id
        )
        sets["password_hash"] = await passwords.hash_password(
            check_password(ctx, body["password"], email)
        )
    assignments = ", ".join(f"{render(column(k))} = ${i}" for i, k in enumerate(sets, 2))
    async with ctx.db.transaction() as tx:
        try:
            done = await tx.fetchval(
                f"UPDATE {users_table()} SET {assignments} WHERE id = $1 RETURNING id",
                user_id,
                *sets.values(),
            )
        except UniqueViolation:
            raise email_taken() from None
        if done is None:
            raise _no_user()
        if "password_hash" in sets:
            await sessions.revoke_all(tx, user_id, "password_changed")
    if "password_hash" in sets or sets.get("disabled"):
        await ctx.revoked.reload(ctx.db, user_id)
    return await admin_get(ctx, user_id)


async def admin_delete(ctx: AppContext, raw_id: str) -> None:
    """Delete an account (its sessions, identities and factors go with it, by trigger)."""
    user_id = _id(raw_id)
    try:
        done = await ctx.db.fetchval(
            f"DELETE FROM {users_table()} WHERE id = $1 RETURNING id", user_id
        )
    except ForeignKeyViolation:
        raise Conflict(
            "records of other collections still point to this user (on_delete: restrict)",
            code="still_referenced",
        ) from None
    if done is None:
        raise _no_user()
    await ctx.revoked.reload(ctx.db, user_id)


async def _existing_id(ctx: AppContext, raw_id: str) -> str:
    """The id of an account that exists; 404 user_not_found otherwise."""
    user_id = _id(raw_id)
    if await by_id(ctx.db, user_id) is None:
        raise _no_user()
    return user_id


async def admin_sessions(ctx: AppContext, raw_id: str) -> list[Any]:
    return await sessions.list_sessions(ctx.db, await _existing_id(ctx, raw_id))


async def admin_revoke_sessions(ctx: AppContext, raw_id: str) -> int:
    user_id = await _existing_id(ctx, raw_id)
    count = await sessions.revoke_all(ctx.db, user_id, "revoked_by_admin")
    await ctx.revoked.reload(ctx.db, user_id)
    return count
