"""Uploads: a multipart record write read part by part, each file streamed to the backend.

Each file part is checked as it arrives: its field must be a file field of the collection, its
first bytes must sniff as an allowed type, and it may not grow past the field's size limit (the
upload stops at the first byte over). The object gets a fresh key and is put on the cleanup list
(due in an hour) before its first byte is written, so a write that never commits leaves nothing
behind for long; `discard` makes that immediate when the caller knows the write failed.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from baas.context import AppContext
from baas.errors import MalformedJson, PayloadTooLarge, ValidationFailed, field_error
from baas.http.request import parse_json
from baas.records import service as records
from baas.records.access import collection
from baas.schema.ids import new_record_id
from baas.schema.models import Collection, Field
from baas.storage import multipart
from baas.storage.backend import Upload
from baas.storage.names import display_name, stored_name
from baas.storage.sniff import SNIFF_BYTES, allowed, extension_for, sniff

JSON_PART = "@json"  # a part holding the non-file fields as one JSON object
UNCOMMITTED_GRACE_S = 3600  # an upload not referenced by then is deleted


@dataclass(slots=True)
class Staged:
    """A file written to the backend, not yet referenced by a committed record."""

    field: Field
    append: bool  # sent as `<field>+`: added to a multi-file field's files
    key: str
    name: str
    original_name: str
    content_type: str
    size: int
    sha256: str


@dataclass(slots=True)
class Form:
    record_id: str
    body: dict[str, Any] = field(default_factory=dict)
    files: list[Staged] = field(default_factory=list)


def object_key(c: Collection, record_id: str, name: str) -> str:
    return f"{c.id}/{record_id}/{name}"


def file_part(name: str) -> tuple[str, bool]:
    """A part's name as (field name, append?): `photos+` adds to the field's files."""
    if name.endswith("+"):
        return name[:-1], True
    return name, False


async def read_multipart(
    ctx: AppContext, name: str, raw_id: str | None, body: AsyncIterator[bytes], marker: bytes
) -> Form:
    """The form of a multipart write to record `raw_id` (None: a new record)."""
    c = collection(ctx, name)
    rid = records.existing_id(c, raw_id) if raw_id is not None else new_record_id()
    return await read_form(ctx, c, rid, body, marker)


async def read_form(
    ctx: AppContext, c: Collection, record_id: str, body: AsyncIterator[bytes], marker: bytes
) -> Form:
    """Read every part; files go to the backend. On any error, what was staged is discarded."""
    form = Form(record_id)
    text_budget = ctx.settings.max_body_bytes
    events = multipart.events(body, marker)
    try:
        async for event in events:
            assert isinstance(event, multipart.Start)
            field_name, append = file_part(event.name)
            f = c.field(field_name)
            if event.filename is not None and f is not None and f.type == "file":
                staged = await _stage_file(ctx, c, form, f, event, events)
                if staged is not None:
                    staged.append = append
                    form.files.append(staged)
            else:
                text_budget = await _read_field(c, form, event, events, text_budget)
    except BaseException:
        await discard(ctx, form.files)
        raise
    return form


async def _read_field(
    c: Collection,
    form: Form,
    start: multipart.Start,
    events: AsyncIterator[multipart.Event],
    budget: int,
) -> int:
    chunks: list[bytes] = []
    async for event in events:
        if isinstance(event, multipart.End):
            break
        assert isinstance(event, multipart.Data)
        budget -= len(event.chunk)
        if budget < 0:
            raise PayloadTooLarge("the form's non-file fields are too large", code="body_too_large")
        chunks.append(event.chunk)
    raw = b"".join(chunks)
    if start.name == JSON_PART:
        values = parse_json(raw, f"the {JSON_PART} part")
        if not isinstance(values, dict):
            raise MalformedJson(f"the {JSON_PART} part must hold a JSON object")
        form.body.update(values)
        return budget
    f = c.field(start.name.rstrip("-"))
    if start.filename is not None and (f is None or f.type != "file"):
        raise ValidationFailed(
            {
                start.name: field_error(
                    "not_a_file_field", f"{c.name} has no file field {start.name!r}"
                )
            }
        )
    form.body[start.name] = _form_value(
        f, raw.decode("utf-8", "replace"), form.body.get(start.name)
    )
    return budget


def _form_value(f: Field | None, text: str, earlier: Any) -> Any:
    """A plain form field's text as the JSON value its field expects (repeated names: a list),
    numbers read exactly as a JSON body's are."""
    if f is None or f.type in (
        "text",
        "email",
        "url",
        "date",
        "datetime",
        "relation",
        "select",
        "file",
    ):
        value: Any = text
    else:
        try:
            value = parse_json(text.encode(), f"the form field {f.name!r}")
        except MalformedJson:
            value = text  # the field's validation says what is wrong with it
    if f is not None and f.multiple and f.type != "json":
        if isinstance(value, list):
            return value
        return [*(earlier or []), value]
    return value


async def _stage_file(
    ctx: AppContext,
    c: Collection,
    form: Form,
    f: Field,
    start: multipart.Start,
    events: AsyncIterator[multipart.Event],
) -> Staged | None:
    limit = f.max_size or ctx.settings.file_max_size
    head = b""
    upload: Upload | None = None
    digest = hashlib.sha256()
    size = 0
    staged: Staged | None = None
    try:
        async for event in events:
            if isinstance(event, multipart.End):
                break
            assert isinstance(event, multipart.Data)
            size += len(event.chunk)
            if size > limit:
                raise _invalid(f, "file_too_large", f"must be at most {limit} bytes")
            digest.update(event.chunk)
            if upload is None:
                head += event.chunk
                if len(head) < SNIFF_BYTES:
                    continue
                staged, upload = await _open(ctx, c, form, f, start, head)
                await upload.write(head)
            else:
                await upload.write(event.chunk)
        if upload is None:
            if not head and not start.filename:
                return None  # an empty file input of an HTML form: no file chosen
            staged, upload = await _open(ctx, c, form, f, start, head)
            await upload.write(head)
        await upload.commit()
    except BaseException:
        if upload is not None:
            await upload.abort()
        if staged is not None:
            await discard(ctx, [staged])
        raise
    assert staged is not None
    staged.size = size
    staged.sha256 = digest.hexdigest()
    return staged


async def _open(
    ctx: AppContext, c: Collection, form: Form, f: Field, start: multipart.Start, head: bytes
) -> tuple[Staged, Upload]:
    mime = sniff(head)
    if not allowed(mime, f.mime_types):
        raise _invalid(
            f, "file_type_not_allowed", f"must be {', '.join(f.mime_types)}; this file is {mime}"
        )
    shown = display_name(start.filename)
    name = stored_name(shown, extension_for(mime))
    key = object_key(c, form.record_id, name)
    await ctx.db.execute(
        "INSERT INTO baas.file_cleanup (key, due) VALUES ($1, now() + make_interval(secs => $2))",
        key,
        float(UNCOMMITTED_GRACE_S),
    )
    upload = await ctx.storage.upload(key, mime)
    return Staged(f, False, key, name, shown, mime, 0, ""), upload


def _invalid(f: Field, code: str, message: str) -> ValidationFailed:
    return ValidationFailed({f.name: field_error(code, message)})


async def discard(ctx: AppContext, files: list[Staged]) -> None:
    """The write these files were for did not commit: delete them now (the cleaner does)."""
    if not files:
        return
    try:
        await ctx.db.execute(
            "UPDATE baas.file_cleanup SET due = now() WHERE key = ANY($1::text[])",
            [s.key for s in files],
        )
    except Exception:  # the hourly due date still holds
        return
    ctx.file_cleaner.wake()
