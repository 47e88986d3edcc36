"""Record writes that touch file fields: the files staged by an upload, kept, added or removed.

A file field holds stored names (one, or a list for `multiple`). In the body of a write:
- a file part named `<field>` sets the field to the uploaded file(s) (replacing what it held),
  `<field>+` adds to a multi-file field;
- `"<field>": null` (or `[]`) clears it; `"<field>": [names...]` keeps only those of its files;
  `"<field>-": [names...]` removes those.

The record write, the `baas.files` rows of new files and the removal of dropped ones happen in
ONE transaction; dropped files go on the cleanup list in it (a trigger), staged ones come off it.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from baas.auth.identity import Identity
from baas.context import AppContext
from baas.db.pool import Executor
from baas.db.sqltree import column, param, render, table
from baas.errors import ValidationFailed, field_error
from baas.records import service as records
from baas.records.access import collection
from baas.records.validation import validate_create, validate_update
from baas.schema.ids import record_id
from baas.schema.models import TABLE_SCHEMA, Collection, Field
from baas.storage.uploads import Form, Staged, discard

__all__ = ["file_fields", "touches_files", "write_record"]


def file_fields(c: Collection) -> list[Field]:
    return [f for f in c.fields if f.type == "file"]


def touches_files(c: Collection, body: Any) -> bool:
    """Whether a JSON body names a file field (then the write goes through here)."""
    if not isinstance(body, dict):
        return False
    return any(f.name in body or f"{f.name}-" in body for f in file_fields(c))


async def write_record(
    ctx: AppContext, identity: Identity, name: str, raw_id: str | None, form: Form
) -> dict[str, Any]:
    """Create (raw_id None) or update a record with the form's fields and files."""
    c = collection(ctx, name)
    try:
        async with ctx.db.transaction() as tx:
            record = await _write(ctx, identity, c, raw_id, form, tx)
    except BaseException:
        await discard(ctx, form.files)
        raise
    return record


async def _write(
    ctx: AppContext,
    identity: Identity,
    c: Collection,
    raw_id: str | None,
    form: Form,
    tx: Executor,
) -> dict[str, Any]:
    current = await _current_files(c, raw_id, tx) if raw_id is not None else {}
    body = {k: v for k, v in form.body.items() if not _is_file_key(c, k)}
    try:
        values, removed = _plan(c, current, form)
    except ValidationFailed as exc:  # with the other fields' problems: all at once
        raise ValidationFailed({**_body_problems(c, body, raw_id), **exc.fields}) from None
    if raw_id is None:
        body.setdefault("id", form.record_id)
        record = await records.create_record(ctx, identity, c.name, body, tx, files=values)
    else:
        record = await records.update_record(ctx, identity, c.name, raw_id, body, tx, files=values)
    rid = record["id"]
    if form.files:
        await tx.execute(
            "INSERT INTO baas.files (key, collection, collection_id, field_id, record_id, name,"
            " original_name, content_type, size, sha256)"
            " SELECT k, $1, $2, f, $3::uuid, n, o, t, s, h FROM unnest($4::text[],"
            " $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[])"
            " AS u(k, f, n, o, t, s, h)",
            c.name,
            c.id,
            rid,
            [s.key for s in form.files],
            [s.field.id for s in form.files],
            [s.name for s in form.files],
            [s.original_name for s in form.files],
            [s.content_type for s in form.files],
            [s.size for s in form.files],
            [s.sha256 for s in form.files],
        )
        await tx.execute(
            "DELETE FROM baas.file_cleanup WHERE key = ANY($1::text[])", [s.key for s in form.files]
        )
    if removed:
        await tx.execute(
            "DELETE FROM baas.files WHERE collection = $1 AND record_id = $2::uuid"
            " AND name = ANY($3::text[])",
            c.name,
            rid,
            removed,
        )
    return record


def _body_problems(c: Collection, body: dict[str, Any], raw_id: str | None) -> dict[str, Any]:
    try:
        if raw_id is None:
            validate_create(c, body)
        else:
            validate_update(c, body, record_id(raw_id) or "")
    except ValidationFailed as exc:
        return exc.fields
    return {}


def _is_file_key(c: Collection, key: str) -> bool:
    f = c.field(key[:-1] if key.endswith("-") else key)
    return f is not None and f.type == "file"


async def _current_files(c: Collection, raw_id: str, tx: Executor) -> dict[str, list[str]]:
    """The record's file names per file field, locked for this write (404 if there is none)."""
    rid = records.existing_id(c, raw_id)
    fields = file_fields(c)
    columns: list[exp.Expression] = [column(f.name) for f in fields] or [exp.Literal.number(1)]
    query = (
        exp.select(*columns)
        .from_(table(c.name, TABLE_SCHEMA))
        .where(exp.EQ(this=column("id"), expression=param(1)))
        .lock(update=True)
    )
    row = await tx.fetchrow(render(query), rid)
    if row is None:
        raise records.not_found(c)
    return {f.name: _names(row[f.name]) for f in fields}


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _plan(
    c: Collection, current: dict[str, list[str]], form: Form
) -> tuple[dict[str, Any], list[str]]:
    """The file fields' new values, and the names they drop."""
    values: dict[str, Any] = {}
    removed: list[str] = []
    errors: dict[str, dict[str, str]] = {}
    for f in file_fields(c):
        before = current.get(f.name, [])
        try:
            after = _field_after(f, before, form)
        except _Refused as exc:
            errors[f.name] = field_error(exc.code, exc.message)
            continue
        if after is None:
            continue  # untouched
        removed += [n for n in before if n not in after]
        values[f.name] = after if f.multiple else (after[0] if after else None)
    if errors:
        raise ValidationFailed(errors)
    return values, removed


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _field_after(f: Field, before: list[str], form: Form) -> list[str] | None:
    uploads = [s for s in form.files if s.field.name == f.name]
    touched = f.name in form.body or f"{f.name}-" in form.body or uploads
    if not touched:
        return None
    after = list(before)
    if f.name in form.body:
        after = _kept(form.body[f.name], before)
    if f"{f.name}-" in form.body:
        gone = _kept(form.body[f"{f.name}-"], before)
        after = [n for n in after if n not in gone]
    if uploads:
        after = _with_uploads(f, after, uploads)
    if f.required and not after:
        raise _Refused("required", "needs a file")
    if f.multiple and f.max is not None and len(after) > f.max:
        raise _Refused("too_many", f"holds at most {int(f.max)} files")
    if f.multiple and f.min is not None and len(after) < f.min:
        raise _Refused("too_few", f"holds at least {int(f.min)} files")
    return after


def _with_uploads(f: Field, after: list[str], uploads: list[Staged]) -> list[str]:
    if not f.multiple:
        if len(uploads) > 1:
            raise _Refused("too_many", "holds one file")
        return [uploads[0].name]
    appended = [s.name for s in uploads if s.append]
    replacing = [s.name for s in uploads if not s.append]
    return [*(replacing or after), *appended]


def _kept(value: Any, before: list[str]) -> list[str]:
    """Names a body value lists (null or "" = none); each must be one of the record's files."""
    if value is None or value == "":
        return []
    names = value if isinstance(value, list) else [value]
    if not all(isinstance(n, str) for n in names):
        raise _Refused("invalid_type", "must list file names")
    unknown = [n for n in names if n not in before]
    if unknown:
        raise _Refused("file_not_found", f"the record has no file named {unknown[0]!r}")
    return list(dict.fromkeys(names))
