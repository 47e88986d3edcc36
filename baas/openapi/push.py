"""OpenAPI paths of push: devices, topics, sending, message status and the development outbox."""

from __future__ import annotations

from typing import Any

from baas.openapi.common import OPTIONAL_AUTH, errors, json_content
from baas.push import devices, notification

_TAG = ["push"]
_TEXT = {"type": "string"}
_UUID = {"type": "string", "format": "uuid"}
_IDS = {"type": "array", "items": _UUID, "maxItems": notification.MAX_IDS}
_MESSAGE_TEXT = {"type": "string", "maxLength": notification.MAX_TEXT}
# An anonymous install (no bearer token) names itself with its own id.
_INSTALL_ID = {"type": "string", "pattern": f"^(?:{devices.INSTALL_ID.pattern})$"}
_DEVICE_IN = {
    "type": "object",
    "required": ["platform", "token"],
    "properties": {
        "platform": {"enum": ["ios", "android"]},
        "token": _TEXT,
        "app_id": _TEXT,
        "locale": {"type": "string", "pattern": f"^(?:{devices.LOCALE.pattern})$"},
        "name": _TEXT,
        "install_id": _INSTALL_ID,
        "user_id": _UUID,
    },
}
_SUBSCRIPTION = {
    "type": "object",
    "description": "Optional: a device to subscribe (anonymous installs must name one), or, "
    "for admins, a user",
    "properties": {
        "device_id": {"type": ["string", "null"], "format": "uuid"},  # null: none
        "install_id": _INSTALL_ID,
        "user_id": _UUID,
    },
}
_DEVICE = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "user_id": {"type": ["string", "null"], "format": "uuid"},
        "platform": {"enum": ["ios", "android"]},
        "token_end": _TEXT,
        "app_id": _TEXT,
        "enabled": {"type": "boolean"},
        "disabled_reason": {"type": ["string", "null"]},
    },
}
_SEND = {
    "type": "object",
    "properties": {
        "users": _IDS,
        "devices": _IDS,
        "topics": {"type": "array", "items": _TEXT, "maxItems": notification.MAX_TOPICS},
        "filter": _TEXT,
        "title": _MESSAGE_TEXT,
        "body": _MESSAGE_TEXT,
        "data": {"type": "object"},
        "badge": {"type": "integer", "minimum": 0},
        "sound": _TEXT,
        "image": {"type": "string", "format": "uri"},
        "thread": _TEXT,
        "collapse_key": _TEXT,
        "priority": {"enum": ["high", "normal"]},
        "ttl": {"type": "integer", "minimum": 0, "maximum": notification.MAX_TTL_S},
        "locales": {"type": "object"},
        "send_at": {"type": "string", "format": "date-time"},
    },
}
_MESSAGE = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {
            "enum": ["scheduled", "sending", "sent", "partially_sent", "failed", "cancelled"]
        },
        "total": {"type": ["integer", "null"]},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "failures": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "status": {"enum": ["failed", "retrying"]},
                    "reason": _TEXT,
                    "devices": {"type": "integer"},
                },
            },
        },
    },
}
_OUTBOX_ENTRY = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "created": {"type": "string", "format": "date-time"},
        "message_id": {"type": "string", "format": "uuid"},
        "device_id": {"type": "string", "format": "uuid"},
        "user_id": {"type": ["string", "null"], "format": "uuid"},
        "install_id": {"type": ["string", "null"]},
        "platform": {"enum": ["ios", "android"]},
        "app": _TEXT,
        "app_id": _TEXT,
        "token_end": _TEXT,
        "locale": {"type": ["string", "null"]},
        "title": _TEXT,
        "body": _TEXT,
        "headers": {"type": "object", "additionalProperties": _TEXT},
        "payload": {"type": "object"},
    },
}


def _op(
    op_id: str,
    summary: str,
    status: str,
    schema: Any,
    *codes: str,
    body: Any = None,
    anonymous: bool = False,
) -> Any:
    """An operation; `anonymous`: an install without an account may call it (by install_id)."""
    operation: dict[str, Any] = {
        "operationId": op_id,
        "tags": _TAG,
        "summary": summary,
        "responses": {
            status: {"description": "OK", "content": json_content(schema)}
            if schema
            else {"description": "Done"},
            **errors(*codes),
        },
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": json_content(body)}
    if anonymous:
        operation["security"] = OPTIONAL_AUTH
    return operation


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema}


def _path(name: str, fmt: str | None = None) -> dict[str, Any]:
    schema = {"type": "string", **({"format": fmt} if fmt else {})}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def push_paths() -> dict[str, Any]:
    items = {"type": "object", "properties": {"items": {"type": "array", "items": _DEVICE}}}
    message_id = [_path("id", "uuid")]
    install = _query("install_id", _INSTALL_ID)
    return {
        "/api/push/devices": {
            "get": {
                **_op("listDevices", "The caller's devices", "200", items, "400", anonymous=True),
                "parameters": [_query("user_id", _UUID), install],
            },
            "post": _op(
                "registerDevice",
                "Register or update a device",
                "201",
                _DEVICE,
                "400",
                "403",
                "409",
                body=_DEVICE_IN,
                anonymous=True,
            ),
        },
        "/api/push/devices/{id}": {
            "parameters": [_path("id", "uuid")],
            "delete": {
                **_op(
                    "unregisterDevice", "Unregister a device", "204", None, "404", anonymous=True
                ),
                "parameters": [install],
            },
        },
        "/api/push/topics": {
            "get": {
                **_op("myTopics", "The caller's topics", "200", {"type": "object"}, anonymous=True),
                "parameters": [install],
            },
        },
        "/api/push/topics/{topic}/subscribe": {
            "parameters": [_path("topic")],
            "post": _subscription("subscribeTopic", "Subscribe"),
            "delete": _subscription("unsubscribeTopic", "Unsubscribe"),
        },
        "/api/push/send": {
            "post": _op(
                "sendPush",
                "Queue a notification",
                "202",
                _MESSAGE,
                "400",
                "401",
                "403",
                "409",
                body=_SEND,
            ),
        },
        "/api/push/messages/{id}": {
            "parameters": message_id,
            "get": _op(
                "getPushMessage", "A message and its delivery counts", "200", _MESSAGE, "404"
            ),
        },
        "/api/push/messages/{id}/deliveries": {
            "parameters": message_id,
            "get": _op(
                "pushDeliveries", "Per-device outcomes", "200", {"type": "object"}, "403", "404"
            ),
        },
        "/api/push/messages/{id}/cancel": {
            "parameters": message_id,
            "post": _op(
                "cancelPush", "Cancel a scheduled message", "200", _MESSAGE, "403", "404", "409"
            ),
        },
        "/api/push/outbox": {
            "get": _op(
                "pushOutbox",
                "What the development outbox kept, newest first",
                "200",
                {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array", "items": _OUTBOX_ENTRY},
                        "next_before": {"type": ["string", "null"], "format": "uuid"},
                    },
                },
                "400",
                "403",
            ),
        },
        "/api/push/outbox/{id}": {
            "parameters": [_path("id", "uuid")],
            "get": _op("pushOutboxEntry", "One outbox entry", "200", _OUTBOX_ENTRY, "403", "404"),
        },
    }


def _subscription(op_id: str, summary: str) -> dict[str, Any]:
    operation: dict[str, Any] = _op(
        op_id, summary, "200", {"type": "object"}, "403", "404", anonymous=True
    )
    # The body is optional: a signed-in user subscribes themself.
    operation["requestBody"] = {"required": False, "content": json_content(_SUBSCRIPTION)}
    return operation
