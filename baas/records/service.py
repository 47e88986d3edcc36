"""Record services: get, list, create, update, upsert, delete and batch, one statement each.

These functions serve REST, the admin console, the CLI and (later) realtime alike. They take plain
values and an `Identity`, and return plain dicts; database errors come back explained per field.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from baas.auth.identity import Identity
from baas.context import AppContext
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
from baas.records.validation import record_id, validate_create, validate_update
from baas.schema.fields import FieldValueError, parse_value
from baas.schema.models import Collection, Field

DEFAULT_SORT = (("created", True),)
UPSERT_ATTEMPTS = 3
_SYSTEM_SORT = {"id": False, "created": False, "updated": False}  # name -> nullable


@dataclass(frozen=True)
class ListParams:
    page: int = 1
    per_page: int = 30
    sort: tuple[tuple[str, bool], ...] = ()  # (field, descending)
    skip_total: bool = False
    cursor: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    page: int
    per_page: int
    total: int | None
    next_cursor: str | None


def collection(ctx: AppContext, name: str) -> Collection:
    c = ctx.schema.collection(name)
    if c is None:
        raise NotFound(f"no collection named {name!r}", code="collection_not_found")
    return c


def authorize(identity: Identity) -> None:
    """Until access rules are declared, records belong to service keys and superusers only."""
    if not identity.is_admin:
        if identity.kind == "anonymous":
            from baas.errors import Unauthorized

            raise Unauthorized("records need a service key until access rules are declared")
        raise Forbidden("records need a service key until access rules are declared")


def _not_found(c: Collection) -> NotFound:
    return NotFound(f"no {c.name} record with this id", code="record_not_found")


# -- reads ---------------------------------------------------------------------------------------


async def get_record(ctx: AppContext, identity: Identity, name: str, raw_id: str) -> dict[str, Any]:
    c = collection(ctx, name)
    authorize(identity)
    rid = record_id(raw_id)
    if rid is None:
        raise _not_found(c)
    q = sql.get_one(ctx.schema, c)
    row = await ctx.db.fetchrow(q.sql, *q.bind({"id": rid}))
    if row is None:
        raise _not_found(c)
    return dict(row)


async def list_records(ctx: AppContext, identity: Identity, name: str, params: ListParams) -> Page:
    c = collection(ctx, name)
    authorize(identity)
    limits = ctx.settings
    sort = _sort_keys(c, params.sort, limits.max_sort_fields)
    offset = (params.page - 1) * params.per_page
    if offset > limits.max_offset:
        raise InvalidParameter(
            f"page is too deep (offset {offset} > {limits.max_offset}); follow next_cursor instead",
            parameter="page",
        )
    args: dict[str, Any] = {"limit": params.per_page + 1, "offset": offset}
    cursor_nulls = None
    if params.cursor is not None:
        if params.page != 1:
            raise InvalidParameter("use either page or cursor, not both", parameter="cursor")
        values = decode_cursor(c, sort, params.cursor)
        cursor_nulls = tuple(v is None for v in values)
        args.update({f"cursor.{i}": v for i, v in enumerate(values)})
    q = sql.list_page(ctx.schema, c, sort, not params.skip_total, cursor_nulls)
    rows = await ctx.db.fetch(q.sql, *q.bind(args))
    total = None
    if not params.skip_total:
        total = rows[0][sql.TOTAL] if rows else 0
        items = [_without_total(r) for r in rows if r["id"] is not None]
    else:
        items = [dict(r) for r in rows]
    next_cursor = None
    if len(items) > params.per_page:
        items = items[: params.per_page]
        next_cursor = encode_cursor(sort, items[-1])
    return Page(items, params.page, params.per_page, total, next_cursor)


def _without_total(row: Any) -> dict[str, Any]:
    out = dict(row)
    del out[sql.TOTAL]
    return out


def _sort_keys(
    c: Collection, requested: tuple[tuple[str, bool], ...], limit: int
) -> tuple[sql.SortKey, ...]:
    if len(requested) > limit:
        raise InvalidParameter(f"sort by at most {limit} fields", parameter="sort")
    keys: list[sql.SortKey] = []
    for name, descending in requested or DEFAULT_SORT:
        if name in _SYSTEM_SORT:
            keys.append(sql.SortKey(name, descending, False))
            continue
        f = c.field(name)
        if f is None or f.hidden:
            raise InvalidParameter(
                f"cannot sort by {name!r}: {c.name} has no such field", parameter="sort"
            )
        if f.multiple or f.type in ("json", "file"):
            raise InvalidParameter(
                f"cannot sort by {name!r}: {f.type} fields with several values have no order",
                parameter="sort",
            )
        keys.append(sql.SortKey(name, descending, not f.not_null))
    if not any(k.name == "id" for k in keys):
        keys.append(sql.SortKey("id", keys[-1].descending, False))  # a total order for cursors
    return tuple(keys)


def encode_cursor(sort: tuple[sql.SortKey, ...], last: dict[str, Any]) -> str:
    payload = orjson.dumps([[str(k) for k in sort], [last[k.name] for k in sort]])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def decode_cursor(c: Collection, sort: tuple[sql.SortKey, ...], cursor: str) -> list[Any]:
    bad = InvalidParameter(
        "the cursor is malformed or belongs to another sort; start again from the first page",
        code="invalid_cursor",
        parameter="cursor",
    )
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        names, values = orjson.loads(raw)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise bad from None
    if names != [str(k) for k in sort] or not isinstance(values, list) or len(values) != len(sort):
        raise bad
    out: list[Any] = []
    for key, value in zip(sort, values, strict=True):
        if value is None:
            if not key.nullable:
                raise bad
            out.append(None)
            continue
        try:
            out.append(parse_value(_cursor_field(c, key.name), value))
        except FieldValueError:
            raise bad from None
    return out


_CURSOR_TYPES = {"id": "relation", "created": "datetime", "updated": "datetime"}
_TEXT_TYPES = ("email", "url", "select")


def _cursor_field(c: Collection, name: str) -> Field:
    """The field's type without its bounds, pattern or choices: a cursor holds values the server
    stored, which a later schema change (say, a new pattern) must not make unreadable."""
    f = c.field(name)
    kind = _CURSOR_TYPES.get(name) or (f.type if f else "text")
    return Field(name=name, type="text" if kind in _TEXT_TYPES else kind)


# -- writes --------------------------------------------------------------------------------------


async def create_record(
    ctx: AppContext, identity: Identity, name: str, body: Any, ex: Executor | None = None
) -> dict[str, Any]:
    c = collection(ctx, name)
    authorize(identity)
    chosen_id, values = validate_create(c, body)
    if chosen_id is not None:
        values = {"id": chosen_id, **values}
    q = sql.insert(ctx.schema, c, tuple(values))
    row = await _write(ctx, c, ex or ctx.db, q, {f"v.{k}": v for k, v in values.items()})
    assert row is not None
    return row


async def update_record(
    ctx: AppContext,
    identity: Identity,
    name: str,
    raw_id: str,
    body: Any,
    ex: Executor | None = None,
) -> dict[str, Any]:
    c = collection(ctx, name)
    authorize(identity)
    rid = record_id(raw_id)
    if rid is None:
        raise _not_found(c)
    values = validate_update(c, body, rid)
    if not values:
        q = sql.get_one(ctx.schema, c)
        row = await (ex or ctx.db).fetchrow(q.sql, *q.bind({"id": rid}))
        if row is None:
            raise _not_found(c)
        return dict(row)
    q = sql.update(ctx.schema, c, tuple(values))
    args = {"id": rid, **{f"v.{k}": v for k, v in values.items()}}
    found = await _write(ctx, c, ex or ctx.db, q, args)
    if found is None:
        raise _not_found(c)
    return found


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
    authorize(identity)
    rid = record_id(raw_id)
    if rid is None:
        raise ValidationFailed({"id": field_error("invalid_id", "must be a UUID")})
    values = validate_update(c, body, rid)
    q = sql.upsert(ctx.schema, c, tuple(values))
    args = {"id": rid, **{f"v.{k}": v for k, v in values.items()}}
    for _ in range(UPSERT_ATTEMPTS):  # no row: a concurrent upsert created it; update it now
        row = await _write(ctx, c, ex or ctx.db, q, args)
        if row is not None:
            created = row.pop(sql.INSERTED)
            return row, bool(created)
    raise Conflict("the record changed concurrently; retry", code="write_conflict")


async def delete_record(
    ctx: AppContext, identity: Identity, name: str, raw_id: str, ex: Executor | None = None
) -> None:
    c = collection(ctx, name)
    authorize(identity)
    rid = record_id(raw_id)
    if rid is None:
        raise _not_found(c)
    q = sql.delete(ctx.schema, c)
    try:
        deleted = await (ex or ctx.db).fetchval(q.sql, *q.bind({"id": rid}))
    except DatabaseError as exc:
        raise _explain(ctx, c, exc, deleting=True) from None
    if deleted is None:
        raise _not_found(c)


async def _write(
    ctx: AppContext, c: Collection, ex: Executor, q: Compiled, args: dict[str, Any]
) -> dict[str, Any] | None:
    try:
        row = await ex.fetchrow(q.sql, *q.bind(args))
    except DatabaseError as exc:
        raise _explain(ctx, c, exc) from None
    return None if row is None else dict(row)


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
        name = exc.column or "value"
        return ValidationFailed({name: field_error("required", "is required")})
    if isinstance(exc, CheckViolation):
        name = owner[1][0] if owner else "value"
        return ValidationFailed({name: field_error("not_allowed", "is outside the allowed values")})
    return exc


# -- batch ----------------------------------------------------------------------------------------

_OPS = ("create", "update", "upsert", "delete")


async def batch(ctx: AppContext, identity: Identity, body: Any) -> list[dict[str, Any]]:
    """Run up to `max_batch_operations` operations in one transaction: all or nothing."""
    authorize(identity)  # before looking at the body: no 400s for callers who may not batch
    ops = body.get("operations") if isinstance(body, dict) else None
    limit = ctx.settings.max_batch_operations
    if not isinstance(ops, list) or not ops:
        raise InvalidParameter('the body must be {"operations": [...]}', code="invalid_body")
    if len(ops) > limit:
        raise InvalidParameter(f"a batch holds at most {limit} operations", code="batch_too_large")
    results = []
    async with ctx.db.transaction() as tx:
        for index, op in enumerate(ops):
            try:
                results.append(await _run_op(ctx, identity, tx, op))
            except ApiError as exc:
                exc.details["operation"] = index
                raise
    return results


async def _run_op(ctx: AppContext, identity: Identity, tx: Executor, op: Any) -> dict[str, Any]:
    if (
        not isinstance(op, dict)
        or op.get("op") not in _OPS
        or not isinstance(op.get("collection"), str)
    ):
        raise InvalidParameter(
            'each operation is {"op": create|update|upsert|delete, '
            '"collection": ..., "id": ..., "body": {...}}',
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
