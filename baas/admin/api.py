"""The admin JSON API (service keys and superusers): schema, history, service keys and jobs.

Used by the console and the CLI; each handler calls one service function.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from baas.auth import keys
from baas.auth.identity import Identity
from baas.errors import Forbidden, InvalidParameter, NotFound, Unauthorized
from baas.http import list_params
from baas.http.request import context, identity, query_params, read_json
from baas.http.responses import json_response, no_content
from baas.http.routing import route
from baas.jobs import queue
from baas.schema import service as schema_service
from baas.schema.document import to_document
from baas.schema.ids import record_id


def require_admin(request: Request) -> Identity:
    who = identity(request)
    if who.kind == "anonymous":
        raise Unauthorized("the admin API needs a service key")
    if not who.is_admin:
        raise Forbidden("the admin API is for service keys and superusers")
    return who


async def list_collections(request: Request) -> Response:
    require_admin(request)
    schema = context(request).schema.schema
    return json_response({"version": schema.version, **to_document(schema, always_users=True)})


async def get_collection(request: Request) -> Response:
    require_admin(request)
    name = request.path_params["name"]
    schema = context(request).schema.schema
    document = to_document(schema, always_users=True)["collections"]
    if name not in document:
        raise NotFound(f"no collection named {name!r}", code="collection_not_found")
    return json_response({"name": name, **_as_mapping(document[name])})


def _as_mapping(doc: Any) -> dict[str, Any]:
    return doc if isinstance(doc, dict) else {"fields": {}}


def _document(body: Any) -> Any:
    if not isinstance(body, dict) or "document" not in body:
        raise InvalidParameter('send {"document": {"collections": {...}}}', code="invalid_body")
    return body["document"]


async def diff_schema(request: Request) -> Response:
    require_admin(request)
    ctx = context(request)
    plan = await schema_service.diff(ctx.db, _document(await read_json(request)))
    return json_response(plan.to_json())


async def apply_schema(request: Request) -> Response:
    who = require_admin(request)
    ctx = context(request)
    body = await read_json(request)
    plan = await schema_service.diff(ctx.db, _document(body))
    base = body.get("base_version")
    if base is not None and base != plan.base_version:
        from baas.errors import Conflict

        raise Conflict(
            f"the schema is at version {plan.base_version}, not {base}; diff again",
            code="schema_changed",
        )
    applied = await schema_service.apply(
        ctx.db, plan, allow_destructive=body.get("allow_destructive") is True, applied_by=who.label
    )
    ctx.schema.set(applied.schema)
    return json_response({"version": applied.version, **plan.to_json()})


async def schema_history(request: Request) -> Response:
    require_admin(request)
    limit = list_params.bounded_int(query_params(request), "limit", 50, 1, 1000)
    return json_response({"items": await schema_service.history(context(request).db, limit)})


async def list_keys(request: Request) -> Response:
    require_admin(request)
    return json_response({"items": await keys.list_keys(context(request).db)})


async def create_key(request: Request) -> Response:
    require_admin(request)
    body = await read_json(request)
    name = keys.check_name(body.get("name") if isinstance(body, dict) else None)
    row, key = await keys.create_key(context(request).db, name)
    return json_response({**row, "key": key}, status=201)


async def revoke_key(request: Request) -> Response:
    require_admin(request)
    key_id = record_id(request.path_params["id"])
    if key_id is None:
        raise NotFound("no active service key with this id", code="key_not_found")
    await keys.revoke_key(context(request).db, key_id)
    return no_content()


JOB_PARAMS = ("status", "kind", "before", "limit")


async def list_jobs(request: Request) -> Response:
    require_admin(request)
    q = query_params(request)
    list_params.reject_unknown(q, JOB_PARAMS)
    db = context(request).db
    before = list_params.bounded_int(q, "before", 0, 0, 2**62) or None
    limit = list_params.bounded_int(q, "limit", 50, 1, queue.MAX_LIST)
    items = await queue.list_jobs(
        db, status=q.get("status"), kind=q.get("kind"), before=before, limit=limit
    )
    return json_response({"items": items, "counts": await queue.counts(db)})


def _job_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) < 19):
        raise NotFound(f"no job {raw[:30]!r}", code="job_not_found")
    return int(raw)


async def get_job(request: Request) -> Response:
    require_admin(request)
    return json_response(await queue.get_job(context(request).db, _job_id(request)))


async def retry_job(request: Request) -> Response:
    require_admin(request)
    return json_response(await queue.retry_job(context(request).db, _job_id(request)))


async def cancel_job(request: Request) -> Response:
    require_admin(request)
    return json_response(await queue.cancel_job(context(request).db, _job_id(request)))


routes = [
    route("/api/admin/collections", GET=list_collections),
    route("/api/admin/collections/{name}", GET=get_collection),
    route("/api/admin/schema/diff", POST=diff_schema),
    route("/api/admin/schema/apply", POST=apply_schema),
    route("/api/admin/schema/history", GET=schema_history),
    route("/api/admin/keys", GET=list_keys, POST=create_key),
    route("/api/admin/keys/{id}", DELETE=revoke_key),
    route("/api/admin/jobs", GET=list_jobs),
    route("/api/admin/jobs/{id}", GET=get_job),
    route("/api/admin/jobs/{id}/retry", POST=retry_job),
    route("/api/admin/jobs/{id}/cancel", POST=cancel_job),
]
