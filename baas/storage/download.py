"""Downloads: which stored file a URL names, whether the caller may have it, and its thumbnails.

A public file (`protected: false`) is served to whoever has its URL; a protected one only to a
caller who passes the record's view rule, decided by the same rule engine as REST (one query),
with the identity of the bearer token or of a short-lived file token (`?token=`, for image views
that cannot send headers). Thumbnails go through the same check, for the sizes the field
declares, made with Pillow on first request and kept in the backend beside the original.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime

from baas.auth.bearer import access_claims
from baas.auth.identity import ANONYMOUS, Identity
from baas.auth.sessions import identity_from_claims
from baas.context import AppContext
from baas.errors import InvalidParameter, NotFound, Unauthorized
from baas.records.access import collection
from baas.records.visibility import visible_to
from baas.schema.ids import record_id
from baas.schema.models import Field
from baas.storage.backend import ObjectMissing
from baas.storage.names import STORED_NAME
from baas.storage.thumbs import THUMBABLE, ThumbError, make_thumb, parse_thumb, thumb_type

FILE_TOKEN = "file"  # noqa: S105 - the token type claim, not a secret
MAX_THUMB_SOURCE = 50 * 1024 * 1024  # bytes of an original read into memory for a thumbnail


@dataclass(frozen=True, slots=True)
class StoredFile:
    key: str
    field: Field
    name: str
    original_name: str
    content_type: str
    size: int
    sha256: str
    created: datetime
    thumb: str = ""  # the thumbnail size served instead of the original

    @property
    def etag(self) -> str:
        suffix = f"-{self.thumb}" if self.thumb else ""
        return f'"{self.sha256[:32]}{suffix}"'


def _missing() -> NotFound:
    return NotFound("no such file", code="file_not_found")


def file_token(ctx: AppContext, identity: Identity) -> tuple[str, int]:
    """A short-lived token standing for this signed-in caller in download URLs."""
    if identity.kind not in ("user", "superuser") or identity.session is None:
        raise Unauthorized("sign in to get a file token", code="auth_required")
    role = "superuser" if identity.kind == "superuser" else "user"
    claims = {"sub": identity.id, "sid": identity.session, "role": role}
    return ctx.signer.sign(claims, ctx.settings.file_token_ttl_s, FILE_TOKEN)


def token_identity(ctx: AppContext, token: str) -> Identity:
    """The caller a file token stands for; 401 when it is not valid (expired, signed out)."""
    return identity_from_claims(access_claims(ctx, token, FILE_TOKEN))


async def find(
    ctx: AppContext, identity: Identity, name: str, raw_id: str, filename: str
) -> StoredFile:
    """The file, if it exists and this caller may have it; 404 otherwise (as for records)."""
    c = collection(ctx, name)
    rid = record_id(raw_id)
    if rid is None or not STORED_NAME.fullmatch(filename):
        raise _missing()
    row = await ctx.db.fetchrow(
        "SELECT key, field_id, original_name, content_type, size, sha256, created"
        " FROM baas.files WHERE collection = $1 AND record_id = $2::uuid AND name = $3",
        c.name,
        rid,
        filename,
    )
    field = next((f for f in c.fields if row and f.id == row["field_id"]), None)
    if row is None or field is None:
        raise _missing()
    if field.protected and not identity.is_admin:
        user = identity.id if identity.kind == "user" else None
        [allowed] = await visible_to(ctx, c.name, rid, [user])
        if not allowed:
            raise _missing()
    return StoredFile(
        row["key"],
        field,
        filename,
        row["original_name"],
        row["content_type"],
        row["size"],
        row["sha256"],
        row["created"],
    )


def identity_for(ctx: AppContext, bearer: Identity, token: str | None) -> Identity:
    """The bearer's identity, or a file token's when the request carries no bearer."""
    if token is None or bearer is not ANONYMOUS:
        return bearer
    return token_identity(ctx, token)


async def thumbnail(
    ctx: AppContext, file: StoredFile, size: str
) -> tuple[StoredFile, bytes | None]:
    """The thumbnail `size` of `file`: (its description, its bytes when just made or None when
    it is in the backend already). The description is the thumbnail's own (key, type, size),
    whichever way it came. Files that are no image are served as they are."""
    spec = parse_thumb(size)
    if spec is None or str(spec) not in file.field.thumbs:
        allowed = ", ".join(file.field.thumbs) or "none"
        raise InvalidParameter(
            f"thumb must be one of the sizes the field declares: {allowed}",
            code="thumb_not_allowed",
        )
    if file.content_type not in THUMBABLE:
        return file, None
    thumb = replace(
        file,
        key=thumb_key(file.key, str(spec)),
        content_type=thumb_type(file.content_type),
        thumb=str(spec),
    )
    stored = await ctx.storage.size(thumb.key)
    if stored is not None:
        return replace(thumb, size=stored), None
    if file.size > MAX_THUMB_SOURCE:
        raise InvalidParameter("the image is too large for thumbnails", code="image_too_large")
    original = b"".join([chunk async for chunk in read(ctx, file)])
    try:
        data, _ = await asyncio.to_thread(make_thumb, original, spec, file.content_type)
    except ThumbError as exc:
        raise InvalidParameter(f"no thumbnail: {exc}", code="not_an_image") from None
    await ctx.storage.put(thumb.key, data, thumb.content_type)
    return replace(thumb, size=len(data)), data


def thumb_key(key: str, size: str) -> str:
    """Thumbnails live beside the original: <collection>/<record>/thumbs/<name>/<size>."""
    folder, _, name = key.rpartition("/")
    return f"{folder}/thumbs/{name}/{size}"


def thumbs_prefix(key: str) -> str:
    folder, _, name = key.rpartition("/")
    return f"{folder}/thumbs/{name}/"


async def read(
    ctx: AppContext, file: StoredFile, offset: int = 0, length: int | None = None
) -> AsyncIterator[bytes]:
    """The file's bytes (a range of them) from the backend."""
    try:
        async for chunk in ctx.storage.read(file.key, offset, length):
            yield chunk
    except ObjectMissing:
        raise NotFound("the file is missing from storage", code="file_missing") from None
