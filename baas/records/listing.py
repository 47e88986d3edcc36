"""Listing records: the list parameters, sort keys, keyset cursors, and the page.

A page is one statement whatever is asked: rule, filter, search, sort through relations, expand,
projection and the total all go into it. Deep pages follow `next_cursor` (keyset pagination).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from baas.auth.identity import Identity
from baas.context import AppContext
from baas.errors import InvalidParameter, InvalidValue
from baas.query import FilterError
from baas.records import sql
from baas.records.access import authorize, bind_auth, collection, query_limits
from baas.records.shape import is_plain, read_shape, to_record
from baas.rules.resolver import SYSTEM_KINDS, field_kind
from baas.schema.fields import FieldValueError, parse_uuid
from baas.schema.models import Collection, Schema

DEFAULT_SORT = (("created", True),)
MAX_SEARCH_LENGTH = 256


@dataclass(frozen=True)
class ListParams:
    page: int = 1
    per_page: int = 30
    sort: tuple[tuple[str, bool], ...] = ()  # (field or relation path, descending)
    skip_total: bool = False
    cursor: str | None = None
    filter: str | None = None
    search: str | None = None
    expand: str | None = None
    fields: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    page: int
    per_page: int
    total: int | None
    next_cursor: str | None


async def list_records(ctx: AppContext, identity: Identity, name: str, params: ListParams) -> Page:
    c = collection(ctx, name)
    authorize(c, "list", identity)
    limits = ctx.settings
    sort = sort_keys(ctx.schema.schema, c, params.sort, limits.max_sort_fields, identity.is_admin)
    offset = (params.page - 1) * params.per_page
    if offset > limits.max_offset:
        raise InvalidParameter(
            f"page is too deep (offset {offset} > {limits.max_offset}); follow next_cursor instead",
            parameter="page",
        )
    args: dict[str, Any] = {"limit": params.per_page + 1, "offset": offset, **bind_auth(identity)}
    cursor_nulls = None
    if params.cursor is not None:
        if params.page != 1:
            raise InvalidParameter("use either page or cursor, not both", parameter="cursor")
        values = decode_cursor(sort, params.cursor)
        cursor_nulls = tuple(v is None for v in values)
        args.update({f"cursor.{i}": v for i, v in enumerate(values) if v is not None})
    if params.search is not None:
        args["search"] = _search_text(c, params.search)
    shape = sql.ListShape(
        read=read_shape(c, params.fields, params.expand, limits),
        sort=sort,
        filter=params.filter or None,
        search=params.search is not None,
        with_total=not params.skip_total,
        cursor_nulls=cursor_nulls,
    )
    try:
        q = sql.list_page(ctx.schema, query_limits(ctx), c, shape, identity.is_admin)
    except FilterError as exc:
        raise InvalidParameter(
            f"filter: {exc}", code="invalid_filter", parameter="filter", position=exc.position
        ) from None
    try:
        rows = await ctx.db.fetch(q.sql, *q.bind(args))
    except InvalidValue as exc:
        if not shape.filter:
            raise
        raise InvalidParameter(
            f"filter: cannot be evaluated on these records ({exc.message})",
            code="invalid_filter",
            parameter="filter",
        ) from None
    return _page(rows, params, c, shape, identity.is_admin)


def _page(
    rows: list[Any], params: ListParams, c: Collection, shape: sql.ListShape, admin: bool
) -> Page:
    sort = shape.sort
    total = None
    if shape.with_total:
        # The count is joined to the page, so an empty page is one row of nulls beside the
        # total: rows are told apart by their id's sort value (never null, always selected).
        total = rows[0][sql.TOTAL] if rows else 0
        id_key = next(i for i, k in enumerate(sort) if k.path == ("id",))
        id_column = _sort_column(sort, id_key, shape.read)
        rows = [r for r in rows if r[id_column] is not None]
    plain = (
        is_plain(c, shape.read, admin)
        and not shape.with_total
        and all(_sort_column(sort, i, shape.read) == k.name for i, k in enumerate(sort))
    )
    next_cursor = None
    if len(rows) > params.per_page:
        rows = rows[: params.per_page]
        next_cursor = encode_cursor(sort, rows[-1], shape.read)
    items = [to_record(r, c, shape.read, plain) for r in rows]
    return Page(items, params.page, params.per_page, total, next_cursor)


def _sort_column(sort: tuple[sql.SortKey, ...], i: int, shape: sql.ReadShape) -> str:
    """The output column holding the i-th sort value: the field's own column when the record
    has it, else the helper column `_s<i>` (see `sql.list_page`)."""
    key, names = sort[i], shape.fields
    if len(key.path) == 1 and (names is None or key.name in names):
        return key.name
    return f"{sql.SORT}{i}"


def _search_text(c: Collection, text: str) -> str:
    if not c.search:
        raise InvalidParameter(
            f"{c.name} declares no search fields (see `search:` in the schema file)",
            parameter="search",
        )
    if len(text) > MAX_SEARCH_LENGTH:
        raise InvalidParameter(
            f"search is at most {MAX_SEARCH_LENGTH} characters", parameter="search"
        )
    return text


def sort_keys(
    schema: Schema,
    c: Collection,
    requested: tuple[tuple[str, bool], ...],
    limit: int,
    admin: bool,
) -> tuple[sql.SortKey, ...]:
    """Checked sort keys, ending with `id` so the order is total (cursors need that)."""
    if len(requested) > limit:
        raise InvalidParameter(f"sort by at most {limit} fields", parameter="sort")
    keys = [
        _sort_key(schema, c, tuple(name.split(".")), descending, admin)
        for name, descending in requested or DEFAULT_SORT
    ]
    if not any(k.path == ("id",) for k in keys):
        keys.append(sql.SortKey(("id",), keys[-1].descending, False, "uuid"))
    return tuple(keys)


def _sort_key(
    schema: Schema, c: Collection, path: tuple[str, ...], descending: bool, admin: bool
) -> sql.SortKey:
    current, nullable = c, False
    for depth, name in enumerate(path):
        last = depth == len(path) - 1
        if name in SYSTEM_KINDS and last:
            return sql.SortKey(path, descending, nullable, SYSTEM_KINDS[name])
        f = current.field(name)
        if f is None or f.hidden:
            raise _bad_sort(path, f"{current.name} has no field {name!r}")
        if f.private and not admin:
            raise _bad_sort(path, f"{name} is shown only to the account itself")
        if last:
            if f.type in ("json", "file"):
                raise _bad_sort(path, f"{f.type} fields cannot be sorted on: sort by another field")
            if f.multiple:
                raise _bad_sort(path, f"{f.type} fields with several values have no order")
            return sql.SortKey(path, descending, nullable or not f.not_null, field_kind(f))
        if f.type != "relation" or f.multiple:
            raise _bad_sort(path, f"{name} is not a single relation")
        current = schema.collection(f.collection or "") or current
        nullable = True  # the related record may be missing (or hidden by its rule)
    raise _bad_sort(path, "empty field name")


def _bad_sort(path: tuple[str, ...], why: str) -> InvalidParameter:
    return InvalidParameter(f"cannot sort by {'.'.join(path)[:80]!r}: {why}", parameter="sort")


def encode_cursor(sort: tuple[sql.SortKey, ...], last: Any, shape: sql.ReadShape) -> str:
    values = [last[_sort_column(sort, i, shape)] for i in range(len(sort))]
    payload = orjson.dumps([[str(k) for k in sort], values])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def decode_cursor(sort: tuple[sql.SortKey, ...], cursor: str) -> list[Any]:
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
        if value is None and not key.nullable:
            raise bad
        try:
            out.append(None if value is None else _cursor_value(key.kind, value))
        except (FieldValueError, ValueError, TypeError, OverflowError):
            raise bad from None
    return out


def _cursor_value(kind: str, value: Any) -> Any:
    """A value the server itself put in a cursor, checked by type only (bounds may have changed)."""
    if kind == "uuid":
        return parse_uuid(value)
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError("not a bool")
        return value
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("not a number")
        return value
    if not isinstance(value, str) or "\x00" in value:
        raise TypeError("not text")
    return value
