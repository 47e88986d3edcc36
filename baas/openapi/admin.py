"""OpenAPI paths of the admin API (service keys and superusers): schema, history, keys, jobs."""

from __future__ import annotations

from typing import Any

from baas.openapi.common import errors, json_content

_TAG = ["admin"]
_OBJECT = {"type": "object"}
_DOCUMENT = {
    "type": "object",
    "properties": {"collections": {"type": ["object", "null"]}},
    "description": "A schema document, as in baas.yaml",
}
_PLAN: dict[str, Any] = {
    "type": "object",
    "properties": {
        "base_version": {"type": "integer"},
        "destructive": {"type": "boolean"},
        "steps": {"type": "array", "items": _OBJECT},
    },
    "required": ["base_version", "destructive", "steps"],
}
_KEY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "prefix": {"type": "string"},
        "created": {"type": "string", "format": "date-time"},
        "revoked": {"type": ["string", "null"], "format": "date-time"},
    },
}


def _op(op_id: str, summary: str, ok: dict[str, Any], *codes: str, body: Any = None) -> Any:
    operation: dict[str, Any] = {
        "operationId": op_id,
        "tags": _TAG,
        "summary": summary,
        "responses": {**ok, **errors("401", "403", *codes)},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": json_content(body)}
    return operation


def _ok(schema: dict[str, Any], status: str = "200", text: str = "OK") -> dict[str, Any]:
    return {status: {"description": text, "content": json_content(schema)}}


def admin_paths() -> dict[str, Any]:
    document_body = {
        "type": "object",
        "properties": {
            "document": _DOCUMENT,
            "allow_destructive": {"type": "boolean"},
            "base_version": {"type": "integer"},
        },
        "required": ["document"],
    }
    applied = {**_PLAN, "properties": {**_PLAN["properties"], "version": {"type": "integer"}}}
    items = {"type": "object", "properties": {"items": {"type": "array", "items": _OBJECT}}}
    keys = {"type": "object", "properties": {"items": {"type": "array", "items": _KEY}}}
    new_key = {**_KEY, "properties": {**_KEY["properties"], "key": {"type": "string"}}}
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    id_param = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    return {
        "/api/admin/collections": {
            "get": _op("adminListCollections", "The live schema document", _ok(_OBJECT)),
        },
        "/api/admin/collections/{name}": {
            "parameters": [name_param],
            "get": _op("adminGetCollection", "One collection", _ok(_OBJECT), "404"),
        },
        "/api/admin/schema/diff": {
            "post": _op(
                "adminDiffSchema",
                "Plan a schema change",
                _ok(_PLAN),
                "400",
                body={
                    "type": "object",
                    "properties": {"document": _DOCUMENT},
                    "required": ["document"],
                },
            ),
        },
        "/api/admin/schema/apply": {
            "post": _op(
                "adminApplySchema",
                "Apply a schema change in one transaction",
                _ok(applied),
                "400",
                "409",
                body=document_body,
            ),
        },
        "/api/admin/schema/history": {
            "get": {
                **_op("adminSchemaHistory", "Applied schema changes", _ok(items)),
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    }
                ],
            },
        },
        "/api/admin/keys": {
            "get": _op("adminListKeys", "Service keys (never the keys themselves)", _ok(keys)),
            "post": _op(
                "adminCreateKey",
                "Create a service key (returned once)",
                _ok(new_key, "201", "Created"),
                "400",
                body={
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                },
            ),
        },
        "/api/admin/keys/{id}": {
            "parameters": [id_param],
            "delete": _op(
                "adminRevokeKey", "Revoke a service key", {"204": {"description": "Revoked"}}, "404"
            ),
        },
        **_jobs_paths(),
    }


_JOB: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string"},
        "status": {"enum": ["queued", "running", "done", "dead", "cancelled"]},
        "payload": _OBJECT,
        "run_at": {"type": "string", "format": "date-time"},
        "attempts": {"type": "integer"},
        "max_attempts": {"type": "integer"},
        "last_error": {"type": ["string", "null"]},
        "finished": {"type": ["string", "null"], "format": "date-time"},
    },
}


def _jobs_paths() -> dict[str, Any]:
    job_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    query = [
        {"name": n, "in": "query", "schema": {"type": t}}
        for n, t in (
            ("status", "string"),
            ("kind", "string"),
            ("before", "integer"),
            ("limit", "integer"),
        )
    ]
    listing = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": _JOB}, "counts": _OBJECT},
    }
    return {
        "/api/admin/jobs": {
            "get": {
                **_op("adminListJobs", "Jobs, newest first", _ok(listing), "400"),
                "parameters": query,
            },
        },
        "/api/admin/jobs/{id}": {
            "parameters": [job_id],
            "get": _op("adminGetJob", "One job", _ok(_JOB), "404"),
        },
        "/api/admin/jobs/{id}/retry": {
            "parameters": [job_id],
            "post": _op(
                "adminRetryJob", "Run a dead or cancelled job again", _ok(_JOB), "404", "409"
            ),
        },
        "/api/admin/jobs/{id}/cancel": {
            "parameters": [job_id],
            "post": _op("adminCancelJob", "Cancel a queued or dead job", _ok(_JOB), "404", "409"),
        },
    }
