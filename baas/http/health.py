"""Health endpoints: liveness (the process answers), readiness (the database answers, durably)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from baas.db.durability import DURABILITY_QUERY
from baas.errors import ApiError
from baas.http.request import context
from baas.http.responses import json_response
from baas.http.routing import route


async def health(request: Request) -> Response:
    return json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    ctx = context(request)
    try:
        durable = await ctx.db.fetchval(DURABILITY_QUERY)
    except ApiError as exc:
        return json_response({"status": "unavailable", "database": exc.code}, status=503)
    if not durable:
        return json_response(
            {"status": "unsafe", "database": "fsync or synchronous_commit is off"}, status=503
        )
    return json_response(
        {"status": "ready", "database": "ok", "schema_version": ctx.schema.version}
    )


routes = [
    route("/api/health", GET=health),
    route("/api/health/ready", GET=ready),
]
