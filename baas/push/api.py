"""HTTP routes for push: devices, topic subscriptions, sending, message status and the
development outbox."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from baas.errors import InvalidParameter
from baas.http import list_params
from baas.http.request import context, identity, query_params, read_json
from baas.http.responses import json_response, no_content
from baas.http.routing import route
from baas.push import devices, outbox, service
from baas.schema.ids import record_id

DELIVERY_STATUSES = ("queued", "sending", "retrying", "sent", "failed")


async def register_device(request: Request) -> Response:
    device, new = await devices.register(
        context(request), identity(request), await read_json(request)
    )
    return json_response(device, status=201 if new else 200)


async def list_devices(request: Request) -> Response:
    q = query_params(request)
    list_params.reject_unknown(q, ("user_id", "install_id"))
    items = await devices.list_devices(
        context(request), identity(request), q.get("user_id"), q.get("install_id")
    )
    return json_response({"items": items})


async def delete_device(request: Request) -> Response:
    q = query_params(request)
    list_params.reject_unknown(q, ("install_id",))
    await devices.unregister(
        context(request), identity(request), request.path_params["id"], q.get("install_id")
    )
    return no_content()


async def subscribe(request: Request) -> Response:
    body = await read_json(request) if await request.body() else {}
    on = request.method == "POST"
    result = await devices.subscribe(
        context(request), identity(request), request.path_params["topic"], body, on
    )
    return json_response(result)


async def my_topics(request: Request) -> Response:
    q = query_params(request)
    list_params.reject_unknown(q, ("install_id",))
    return json_response(
        await devices.topics_of(context(request), identity(request), q.get("install_id"))
    )


async def send(request: Request) -> Response:
    result = await service.send(context(request), identity(request), await read_json(request))
    return json_response(result, status=202)


async def get_message(request: Request) -> Response:
    service.require_signed_in(identity(request))
    list_params.reject_unknown(query_params(request), ())
    message = await service.message_status(
        context(request), request.path_params["id"], identity(request)
    )
    return json_response(message)


async def message_deliveries(request: Request) -> Response:
    _admin(request)
    q = query_params(request)
    list_params.reject_unknown(q, ("status", "after", "limit"))
    status = q.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise InvalidParameter("status must be one of: " + ", ".join(DELIVERY_STATUSES))
    after = q.get("after")
    if after is not None and record_id(after) is None:
        raise InvalidParameter("after must be a device id (next_after of the previous page)")
    limit = list_params.bounded_int(q, "limit", 100, 1, 1000)
    ctx = context(request)
    await service.message_status(ctx, request.path_params["id"])  # 404 first
    items = await service.deliveries(ctx, request.path_params["id"], status, after, limit)
    next_after = items[-1]["device_id"] if len(items) == limit else None
    return json_response({"items": items, "next_after": next_after})


async def cancel_message(request: Request) -> Response:
    _admin(request)
    return json_response(await service.cancel(context(request), request.path_params["id"]))


async def list_outbox(request: Request) -> Response:
    _admin(request)
    q = query_params(request)
    list_params.reject_unknown(q, ("user_id", "message_id", "before", "limit"))
    ids = {name: _id_param(q.get(name), name) for name in ("user_id", "message_id", "before")}
    limit = list_params.bounded_int(q, "limit", 50, 1, outbox.LIST_MAX)
    items = await outbox.entries(context(request).db, **ids, limit=limit)
    return json_response(
        {"items": items, "next_before": items[-1]["id"] if len(items) == limit else None}
    )


async def get_outbox_entry(request: Request) -> Response:
    _admin(request)
    list_params.reject_unknown(query_params(request), ())
    return json_response(await outbox.entry(context(request).db, request.path_params["id"]))


def _id_param(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    canonical = record_id(value)
    if canonical is None:
        raise InvalidParameter(f"{name} must be an id, not {value[:60]!r}", parameter=name)
    return canonical


def _admin(request: Request) -> None:
    service.require_admin(identity(request))


routes = [
    route("/api/push/devices", GET=list_devices, POST=register_device),
    route("/api/push/devices/{id}", DELETE=delete_device),
    route("/api/push/topics", GET=my_topics),
    route("/api/push/topics/{topic}/subscribe", POST=subscribe, DELETE=subscribe),
    route("/api/push/send", POST=send),
    route("/api/push/messages/{id}", GET=get_message),
    route("/api/push/messages/{id}/deliveries", GET=message_deliveries),
    route("/api/push/messages/{id}/cancel", POST=cancel_message),
    route("/api/push/outbox", GET=list_outbox),
    route("/api/push/outbox/{id}", GET=get_outbox_entry),
]
