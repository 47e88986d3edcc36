"""HTTP routes for records: /api/collections/{collection}/records[/{id}] and /api/batch."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from baas.http import list_params
from baas.http.request import context, identity, query_params, read_json
from baas.http.responses import json_response, no_content
from baas.http.routing import route
from baas.records import service
from baas.records.access import collection
from baas.records.service import ListParams
from baas.schema.ids import new_record_id
from baas.storage import multipart, uploads
from baas.storage import service as files

LIST_PARAMS = (
    "page",
    "per_page",
    "sort",
    "skip_total",
    "cursor",
    "filter",
    "search",
    "expand",
    "fields",
)
GET_PARAMS = ("expand", "fields")


def _list_params(request: Request) -> ListParams:
    settings = context(request).settings
    query = query_params(request)
    list_params.reject_unknown(query, LIST_PARAMS)
    return ListParams(
        page=list_params.bounded_int(query, "page", 1, 1, 10**9),
        per_page=list_params.bounded_int(
            query, "per_page", settings.default_per_page, 1, settings.max_per_page
        ),
        sort=list_params.sort_spec(query),
        skip_total=list_params.boolean(query, "skip_total"),
        cursor=list_params.text(query, "cursor"),
        filter=list_params.text(query, "filter", settings.max_filter_length),
        search=list_params.text(query, "search"),
        expand=list_params.text(query, "expand"),
        fields=list_params.text(query, "fields"),
    )


async def list_records(request: Request) -> Response:
    page = await service.list_records(
        context(request),
        identity(request),
        request.path_params["collection"],
        _list_params(request),
    )
    return json_response(
        {
            "items": page.items,
            "page": page.page,
            "per_page": page.per_page,
            "total": page.total,
            "next_cursor": page.next_cursor,
        }
    )


async def get_record(request: Request) -> Response:
    p = request.path_params
    query = query_params(request)
    if query:
        list_params.reject_unknown(query, GET_PARAMS)
    record = await service.get_record(
        context(request),
        identity(request),
        p["collection"],
        p["id"],
        fields=list_params.text(query, "fields"),
        expand=list_params.text(query, "expand"),
    )
    return json_response(record)


async def create_record(request: Request) -> Response:
    record = await _write(request, request.path_params["collection"], None)
    return json_response(record, status=201)


async def update_record(request: Request) -> Response:
    p = request.path_params
    return json_response(await _write(request, p["collection"], p["id"]))


async def _write(request: Request, name: str, raw_id: str | None) -> dict[str, Any]:
    """Create (raw_id None) or update. Uploads (multipart/form-data), and JSON that keeps or
    removes files, go through the storage service."""
    ctx, caller = context(request), identity(request)
    marker = multipart.boundary(request.headers.get("content-type", ""))
    if marker is not None:
        form = await uploads.read_multipart(ctx, name, raw_id, request.stream(), marker)
        return await files.write_record(ctx, caller, name, raw_id, form)
    body = await read_json(request)
    if files.touches_files(collection(ctx, name), body):
        form = uploads.Form(raw_id or new_record_id(), body)
        return await files.write_record(ctx, caller, name, raw_id, form)
    if raw_id is None:
        return await service.create_record(ctx, caller, name, body)
    return await service.update_record(ctx, caller, name, raw_id, body)


async def upsert_record(request: Request) -> Response:
    p = request.path_params
    body = await read_json(request)
    record, created = await service.upsert_record(
        context(request), identity(request), p["collection"], p["id"], body
    )
    return json_response(record, status=201 if created else 200)


async def delete_record(request: Request) -> Response:
    p = request.path_params
    await service.delete_record(context(request), identity(request), p["collection"], p["id"])
    return no_content()


async def batch(request: Request) -> Response:
    body = await read_json(request)
    results = await service.batch(context(request), identity(request), body)
    return json_response({"results": results})


routes = [
    route(
        "/api/collections/{collection}/records/{id}",
        GET=get_record,
        PATCH=update_record,
        PUT=upsert_record,
        DELETE=delete_record,
    ),
    route("/api/collections/{collection}/records", GET=list_records, POST=create_record),
    route("/api/batch", POST=batch),
]
