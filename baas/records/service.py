"""Record services: get, create, update, upsert, delete and batch, one statement each, rules inside.

These functions serve REST, files (`storage/`) and the auth flows (the users collection) alike.
They take plain values and an `Identity`, and return plain dicts; database errors come back
explained per field.
A record that exists but fails the caller's rule answers 404 exactly like a missing one.
"""

from __future__ import annotations

from typing import Any

from baas.auth.identity import Identity
from baas.context import AppContext
from baas.db import bells
from baas.db.errors import (
    CheckViolation,
    DatabaseError,
    ForeignKeyViolation,
    NotNullViolation,
    UniqueViolation,
)
from baas.db.pool import Executor
from baas.db.sqltree import Compiled
from baas.errors import (
    ApiError,
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    ValidationFailed,
    field_error,
)
from baas.records import sql
from baas.records.access import authorize, bind_auth, collection, query_limits
from baas.records.listing import ListParams, Page, list_records
from baas.records.shape import DEFAULT, is_plain, read_shape, to_record
from baas.records.validation import validate_create, validate_update
from baas.schema.auth_collection import AUTH_COLLECTION
from baas.schema.ids import record_id
from baas.schema.models import Collection

UPSERT_ATTEMPTS = 3

__all__ = [
    "ListParams",
    "Page",
    "batch",
    "create_record",
    "delete_record",
    "get_record",
    "list_records",
    "update_record",
    "upsert_record",
]


def not_found(c: Collection) -> NotFound:
    return NotFound(f"no {c.name} record with this id", code="record_not_found")


def existing_id(c: Collection, raw_id: str) -> str:
    rid = record_id(raw_id)
    if rid is None:
        raise not_found(c)  # it cannot exist: same answer as a missing record
    return rid


async def get_record(
    ctx: AppContext,
    identity: Identity,
    name: str,
    raw_id: str,
    fields: str | None = None,
    expand: str | None = None,
) -> dict[str, Any]:
    c = collection(ctx, name)
    authorize(c, "view", identity)
    rid = existing_id(c, raw_id)
    shape = read_shape(c, fields, expand, ctx.settings)
    q = sql.get_one(ctx.schema, query_limits(ctx), c, shape, identity.is_admin)
    row = await ctx.db.fetchrow(q.sql, *q.bind({"id": rid, **bind_auth(identity)}))
    if row is None:
        raise not_found(c)
    return to_record(row, c, shape, is_plain(c, shape, identity.is_admin))


# -- writes --------------------------------------------------------------------------------------


def _write_args(identity: Identity, values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Column values (`v.*`), the same incoming values for rules (`body.*`), and `auth.id`."""
    args = {**bind_auth(identity), **extra}
    for key, value in values.items():
        args[f"v.{key}"] = value
        args[f"body.{key}"] = value
    return args


class _Body(dict[str, Any]):
    """Rule arguments for fields absent from the body: `body.<field>` is null then."""

    def __missing__(self, key: str) -> Any:
        if key.startswith("body."):
            return None
        raise KeyError(key)


def _no_sign_up_here(c: Collection, identity: Identity) -> None:
    """Users come from the auth API (its create rule governs sign-up); only admins may add
    records to `users` directly (without credentials: e.g. imports, fixtures)."""
    if c.name == AUTH_COLLECTION and not identity.is_admin:
        raise Forbidden(
            "users sign up through POST /api/auth/sign-up, not the records API",
            code="use_auth_api",
        )


async def create_record(
    ctx: AppContext,
    identity: Identity,
    name: str,
    body: Any,
    ex: Executor | None = None,
    files: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`files`: file fields' values (stored names), set by the storage service beside the body."""
    c = collection(ctx, name)
    authorize(c, "create", identity)
    _no_sign_up_here(c, identity)
    chosen_id, values = validate_create(c, body)
    if chosen_id is not None:
        values = {"id": chosen_id, **values}
    if files:
        values.update(files)
    q = sql.insert(ctx.schema, query_limits(ctx), c, tuple(values), identity.is_admin)
    row = await _write(ctx, c, ex or ctx.db, q, _Body(_write_args(identity, values)))
    assert row is not None
    return to_record(row, c)


async def create_with_system_fields(
    ctx: AppContext,
    identity: Identity,
    name: str,
    body: Any,
    system: dict[str, Any],
    ex: Executor | None = None,
) -> Any:
    """Insert a record whose system fields the auth service sets (`system`) beside the client's
    own fields (`body`, validated like any create), checked against the create rule in the
    same statement (so `body.email` may be tested by it). Returns the row as stored."""
    c = collection(ctx, name)
    chosen_id, values = validate_create(c, body)
    values = {**values, **system}
    if chosen_id is not None:  # callers that must not choose one refuse `id` before this
        values = {"id": chosen_id, **values}
    q = sql.insert(ctx.schema, query_limits(ctx), c, tuple(values), identity.is_admin)
    return await _write(ctx, c, ex or ctx.db, q, _Body(_write_args(identity, values)))


async def update_record(
    ctx: AppContext,
    identity: Identity,
    name: str,
    raw_id: str,
    body: Any,
    ex: Executor | None = None,
    files: dict[str, Any] | None = None,
) -> dict[str, Any]:
    c = collection(ctx, name)
    authorize(c, "update", identity)
    rid = existing_id(c, raw_id)
    values = validate_update(c, body, rid)
    if files:
        values.update(files)
    if values:
        q = sql.update(ctx.schema, query_limits(ctx), c, tuple(values), identity.is_admin)
    else:  # nothing to change: the record as it is, if the caller may update it
        q = sql.get_one(ctx.schema, query_limits(ctx), c, DEFAULT, identity.is_admin, "update")
    row = await _write(ctx, c, ex or ctx.db, q, _Body(_write_args(identity, values, id=rid)))
    if row is None:
        raise not_found(c)
    return to_record(row, c)


async def upsert_record(
    ctx: AppContext,
    identity: Identity,
    name: str,
    raw_id: str,
    body: Any,
    ex: Executor | None = None,
) -> tuple[dict[str, Any], bool]:
    """Create the record with this id, or update the fields given; (record, created?)."""
    c = collection(ctx, name)
    authorize(c, "create", identity)
    authorize(c, "update", identity)
    _no_sign_up_here(c, identity)
    rid = record_id(raw_id)
    if rid is None:
        raise ValidationFailed({"id": field_error("invalid_id", "must be a UUID")})
    values = validate_update(c, body, rid)
    q = sql.upsert(ctx.schema, query_limits(ctx), c, tuple(values), identity.is_admin)
    args = _Body(_write_args(identity, values, id=rid))
    for attempt in range(UPSERT_ATTEMPTS):
        row = await _write(ctx, c, ex or ctx.db, q, args)
        if row is not None:
            return to_record(row, c), bool(row[sql.INSERTED])
        # Nothing written: the rule refused the existing record, or a racing PUT inserted it
        # after this statement's snapshot. Once more with a fresh snapshot tells them apart.
        if attempt > 0 and await _exists(ctx, c, ex or ctx.db, rid):
            raise not_found(c)  # there, but not for this caller to update: as if absent
    raise Conflict("the record changed concurrently; retry", code="write_conflict")


async def _exists(ctx: AppContext, c: Collection, ex: Executor, rid: str) -> bool:
    q = sql.get_one(ctx.schema, query_limits(ctx), c, DEFAULT, True)
    return await ex.fetchrow(q.sql, *q.bind({"id": rid, "auth.id": None})) is not None


async def delete_record(
    ctx: AppContext, identity: Identity, name: str, raw_id: str, ex: Executor | None = None
) -> None:
    c = collection(ctx, name)
    authorize(c, "delete", identity)
    rid = existing_id(c, raw_id)
    q = sql.delete(ctx.schema, query_limits(ctx), c, identity.is_admin)
    ex = ex or ctx.db
    try:
        deleted = await ex.fetchval(q.sql, *q.bind({"id": rid, **bind_auth(identity)}))
    except DatabaseError as exc:
        raise _explain(ctx, c, exc, deleting=True) from None
    if deleted is None:
        raise not_found(c)
    _ring(c, ex)


def _ring(c: Collection, ex: Executor) -> None:
    """Wake, once the write commits, the readers of what it changed: the change log; the job
    queue when the collection has push triggers (the log's trigger queued a job); the file
    cleaner when it holds files (a dropped file went on the cleanup list)."""
    ex.ring(bells.CHANGES)
    if c.push:
        ex.ring(bells.JOBS)
    if any(f.type == "file" for f in c.fields):
        ex.ring(bells.FILE_CLEANUP)


async def _write(
    ctx: AppContext, c: Collection, ex: Executor, q: Compiled, args: dict[str, Any]
) -> Any:
    try:
        row = await ex.fetchrow(q.sql, *q.bind(args))
    except DatabaseError as exc:
        raise _explain(ctx, c, exc) from None
    if row is not None:
        _ring(c, ex)
    return row


def _explain(
    ctx: AppContext, c: Collection, exc: DatabaseError, deleting: bool = False
) -> ApiError:
    """Name the field(s) behind an integrity error, in the words of the schema."""
    owner = ctx.schema.constraint(exc.constraint) if exc.constraint else None
    if isinstance(exc, UniqueViolation):
        fields = owner[1] if owner else ("id",)
        label = ", ".join(fields)
        return Conflict(
            f"a {c.name} record with this {label} already exists",
            code="unique_violation",
            fields={f: field_error("not_unique", "is already taken") for f in fields},
        )
    if isinstance(exc, ForeignKeyViolation):
        if deleting or (owner and owner[0].name != c.name):
            where = f"{owner[0].name}.{owner[1][0]}" if owner else "another collection"
            return Conflict(
                f"this {c.name} record is still referenced by {where} (on_delete: restrict)",
                code="still_referenced",
            )
        name = owner[1][0] if owner else exc.column or "relation"
        return ValidationFailed(
            {name: field_error("relation_not_found", "points to a record that does not exist")}
        )
    if isinstance(exc, NotNullViolation):
        return ValidationFailed({exc.column or "value": field_error("required", "is required")})
    if isinstance(exc, CheckViolation):
        name = owner[1][0] if owner else "value"
        return ValidationFailed({name: field_error("not_allowed", "is outside the allowed values")})
    return exc


# -- batch ----------------------------------------------------------------------------------------

_OPS = ("create", "update", "upsert", "delete")


async def batch(ctx: AppContext, identity: Identity, body: Any) -> list[dict[str, Any]]:
    """Run up to `max_batch_operations` operations in one transaction: all or nothing.
    Each operation is checked against the caller's rules, as it would be alone."""
    ops = _operations(body, ctx.settings.max_batch_operations)
    results = []
    async with ctx.db.transaction() as tx:
        for index, op in enumerate(ops):
            try:
                results.append(await _run_op(ctx, identity, tx, op))
            except ApiError as exc:
                exc.details["operation"] = index
                raise
    return results


def _operations(body: Any, limit: int) -> list[Any]:
    """The body's list of 1 to `limit` operations; a 400 saying what is wrong with it."""
    shape = f'{{"operations": [...]}} with 1 to {limit} operations'
    if not isinstance(body, dict):
        raise InvalidParameter(f"the body must be a JSON object {shape}", code="invalid_body")
    ops = body.get("operations")
    if ops is None:
        raise InvalidParameter(f'the body has no "operations": send {shape}', code="invalid_body")
    if not isinstance(ops, list):
        raise InvalidParameter(f'"operations" must be a list: send {shape}', code="invalid_body")
    if not ops:
        raise InvalidParameter(
            f"the operations list is empty: send 1 to {limit} operations", code="invalid_body"
        )
    if len(ops) > limit:
        raise InvalidParameter(
            f"a batch holds at most {limit} operations, not {len(ops)}: split it",
            code="batch_too_large",
        )
    return ops


async def _run_op(ctx: AppContext, identity: Identity, tx: Executor, op: Any) -> dict[str, Any]:
    if (
        not isinstance(op, dict)
        or op.get("op") not in _OPS
        or not isinstance(op.get("collection"), str)
    ):
        raise InvalidParameter(
            'each operation is {"op": create|update|upsert|delete, "collection": ..., '
            '"id": ..., "body": {...}}',
            code="invalid_operation",
        )
    kind, name, body = op["op"], op["collection"], op.get("body", {})
    if kind == "create":
        return {"status": 201, "body": await create_record(ctx, identity, name, body, tx)}
    raw_id = op.get("id")
    if not isinstance(raw_id, str):
        raise InvalidParameter(f"a {kind} operation needs the record id", code="invalid_operation")
    if kind == "update":
        return {"status": 200, "body": await update_record(ctx, identity, name, raw_id, body, tx)}
    if kind == "upsert":
        record, created = await upsert_record(ctx, identity, name, raw_id, body, tx)
        return {"status": 201 if created else 200, "body": record}
    await delete_record(ctx, identity, name, raw_id, tx)
    return {"status": 204}
