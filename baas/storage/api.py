"""HTTP routes for files: downloads (ranges, conditional requests, thumbnails) and file tokens.
(Uploads arrive with record writes: the records routes hand multipart bodies to the storage
service.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from baas.context import AppContext
from baas.http import list_params
from baas.http.ranges import byte_range, http_date, not_modified
from baas.http.request import context, identity, query_params
from baas.http.responses import json_response
from baas.http.routing import route
from baas.storage import download
from baas.storage.download import StoredFile
from baas.storage.names import content_disposition
from baas.storage.sniff import renders_active_content

DOWNLOAD_PARAMS = ("thumb", "download", "token")
PRESIGNED_TTL_S = 300
SANDBOX = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"


async def file_token(request: Request) -> Response:
    token, expires = download.file_token(context(request), identity(request))
    return json_response({"token": token, "expires": expires})


async def get_file(request: Request) -> Response:
    ctx = context(request)
    p, query = request.path_params, query_params(request)
    list_params.reject_unknown(query, DOWNLOAD_PARAMS)
    caller = download.identity_for(ctx, identity(request), query.get("token"))
    file = await download.find(ctx, caller, p["collection"], p["id"], p["name"])
    made = None
    if query.get("thumb"):
        file, made = await download.thumbnail(ctx, file, query["thumb"])
    active = renders_active_content(file.content_type) and not file.field.serve_inline
    attachment = list_params.boolean(query, "download") or active
    headers = _headers(file, attachment)
    if not_modified(request.headers, file.etag, file.created):
        return Response(status_code=304, headers=_validators(file))
    presigned = None
    if made is None and ctx.settings.s3_presigned_downloads:
        presigned = _presigned(ctx, file, headers)
    if presigned is not None:
        return RedirectResponse(presigned, status_code=302, headers={"Cache-Control": "no-store"})
    return await _send(request, file, headers, made)


async def _send(
    request: Request, file: StoredFile, headers: dict[str, str], made: bytes | None
) -> Response:
    """The file (or the range asked for), framed by `file.size`: from `made` when its bytes
    were just made (a new thumbnail), streamed from the backend otherwise."""
    ctx = context(request)
    wanted = byte_range(request.headers, file.size, file.etag, file.created)
    if wanted is False:
        headers = {**headers, "Content-Range": f"bytes */{file.size}"}
        return Response(status_code=416, headers=headers)
    status, offset, length = 200, 0, file.size
    if isinstance(wanted, tuple):
        status, offset, length = 206, wanted[0], wanted[1] - wanted[0] + 1
        headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1]}/{file.size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD" or length == 0:
        return Response(status_code=status, headers=headers, media_type=file.content_type)
    if made is not None:
        body = made[offset : offset + length]
        return Response(body, status_code=status, headers=headers, media_type=file.content_type)
    chunks = download.read(ctx, file, offset, length)
    first = await anext(chunks, b"")  # a missing object is a 404, before anything is sent
    return StreamingResponse(
        _then(first, chunks), status_code=status, headers=headers, media_type=file.content_type
    )


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


def _validators(file: StoredFile) -> dict[str, str]:
    cache = "private, no-cache" if file.field.protected else "public, max-age=86400"
    return {"ETag": file.etag, "Last-Modified": http_date(file.created), "Cache-Control": cache}


def _headers(file: StoredFile, attachment: bool) -> dict[str, str]:
    kind: Literal["inline", "attachment"] = "attachment" if attachment else "inline"
    return {
        **_validators(file),
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(kind, file.original_name),
        "Content-Security-Policy": SANDBOX,  # (nosniff: every response has it)
    }


def _presigned(ctx: AppContext, file: StoredFile, headers: dict[str, str]) -> str | None:
    overrides = {
        "response-content-type": file.content_type,
        "response-content-disposition": headers["Content-Disposition"],
    }
    return ctx.storage.presigned_get(file.key, PRESIGNED_TTL_S, overrides)


routes = [
    route("/api/files/token", POST=file_token),
    route("/api/files/{collection}/{id}/{name}", GET=get_file),
]
