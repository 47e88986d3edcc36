"""The OpenAPI 3.1 document, generated from the live schema (one set of schemas per collection).

Cached per schema version; hidden fields never appear, exactly as they never appear in records.
"""

from __future__ import annotations

import re
from typing import Any

from baas.config import Settings
from baas.openapi.admin import admin_paths
from baas.openapi.auth import auth_paths
from baas.openapi.common import add_common_statuses, json_content, ref
from baas.openapi.files import files_paths
from baas.openapi.push import push_paths
from baas.openapi.records import batch_operation, collection_paths
from baas.schema.cache import SchemaCache
from baas.schema.fields import TYPES
from baas.schema.models import Collection, Field

_JSON_TYPES = {
    "text": {"type": "string"},
    "email": {"type": "string", "format": "email"},
    "url": {"type": "string", "format": "uri"},
    "integer": {"type": "integer", "format": "int64"},
    "number": {"type": "number", "format": "double"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "json": {},
    "select": {"type": "string"},
    "relation": {"type": "string", "format": "uuid"},
    "file": {"type": "string"},
}
_ERROR_CODES = {
    "400": "Invalid request (see error.code and error.fields)",
    "401": "Missing or invalid credentials",
    "403": "Not allowed",
    "404": "Not found",
    "409": "Conflict (unique value taken, record still referenced, concurrent change)",
    "413": "Body too large (BAAS_MAX_BODY_BYTES, or a file past its field's max_size)",
    "414": "Request line too long (BAAS_MAX_HEADER_BYTES)",
    "415": "Body is not JSON (or not multipart/form-data where uploads are accepted)",
    "429": "Too many attempts (see the Retry-After header)",
    "431": "Request headers too large (BAAS_MAX_HEADER_BYTES)",
    "503": "Database unavailable or too slow; retry",
}


def openapi_document(cache: SchemaCache, settings: Settings, version: str) -> dict[str, Any]:
    """The document for this schema version and these settings (its limits are declared)."""
    return cache.memo(("openapi", settings.base_url), lambda: _build(cache, settings, version))


def _build(cache: SchemaCache, settings: Settings, version: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _error_schema()}
    paths: dict[str, Any] = {}
    for c in cache.schema.collections:
        title = _title(c.name)
        schemas[f"{title}Record"] = _record_schema(c)
        schemas[f"{title}Create"] = _write_schema(c, creating=True)
        schemas[f"{title}Update"] = _write_schema(c, creating=False)
        schemas[f"{title}Page"] = _page_schema(title)
        paths.update(collection_paths(c, title, settings))
    paths["/api/batch"] = {"post": batch_operation(settings)}
    paths["/api/health"] = {"get": _simple("Liveness (same as /api/health/live)", "health")}
    paths["/api/health/live"] = {
        "get": _simple("Liveness: the process can make progress or recover", "live")
    }
    paths["/api/health/ready"] = {"get": _simple("Readiness: the database answers", "ready")}
    paths.update(admin_paths())
    paths.update(auth_paths())
    paths.update(files_paths())
    paths.update(push_paths())
    add_common_statuses(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "baas API",
            "version": f"{version}+schema.{cache.version}",
            "description": "Records API generated from the live schema.",
        },
        "servers": [{"url": settings.base_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                code: {
                    "description": text,
                    "content": json_content({"$ref": "#/components/schemas/Error"}),
                }
                for code, text in _ERROR_CODES.items()
            },
        },
        "security": [{"bearer": []}],
    }


def _title(name: str) -> str:
    """PascalCase, one to one: `_x` becomes `X`, other underscores stay (foo_1 -> Foo_1).

    Collection names hold no capitals, so no two collections share a title, and since every
    component name ends in Record, Create, Update or Page, none collides with another (or Error).
    """
    return _WORD_START.sub(lambda m: m[1].upper(), name[:1].upper() + name[1:])


_WORD_START = re.compile(r"_([a-z])")
_NOT_NULL_JSON = {"type": ["object", "array", "string", "number", "boolean"]}


def _field_schema(f: Field, writing: bool = False) -> dict[str, Any]:
    """A field's value in a record (or, `writing`, in a request body)."""
    nullable = (writing and not f.required) if f.multiple else not f.not_null
    if f.type == "json" and nullable:
        schema: dict[str, Any] = {}
    else:
        schema = _list_schema(f) if f.multiple else _value_schema(f)
        if nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
    if f.default is not None and not f.default.is_now:
        schema["default"] = f.default.value
    return schema


def _value_schema(f: Field) -> dict[str, Any]:
    """One value, with the bounds `fields.parse_value` enforces."""
    if f.type == "json":
        return dict(_NOT_NULL_JSON)
    schema: dict[str, Any] = dict(_JSON_TYPES[f.type])
    if f.type == "select":
        schema["enum"] = list(f.values)
    if TYPES[f.type].length_bounds and not f.multiple:
        _bounds(schema, "Length", 1 if f.required else 0, f.min, f.max)
    elif f.type in ("integer", "number"):
        if f.min is not None:
            schema["minimum"] = _plain(f.min)
        if f.max is not None:
            schema["maximum"] = _plain(f.max)
    if f.pattern:
        schema["pattern"] = f"^(?:{f.pattern})$"  # the server matches the whole text
    if "format" in schema and f.type in ("email", "url") and not f.required:
        schema["anyOf"] = [{"format": schema.pop("format")}, {"maxLength": 0}]  # "" is accepted
    return schema


def _list_schema(f: Field) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": _value_schema(f), "uniqueItems": True}
    _bounds(schema, "Items", 1 if f.required else 0, f.min, f.max)
    return schema


def _bounds(
    schema: dict[str, Any], suffix: str, least: int, low: float | None, high: float | None
) -> None:
    low_count = max(least, int(low or 0))
    if low_count:
        schema[f"min{suffix}"] = low_count
    if high is not None:
        schema[f"max{suffix}"] = int(high)


def _plain(value: float) -> float | int:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _record_schema(c: Collection) -> dict[str, Any]:
    """A record as read: hidden fields never appear; private ones (users' `verified`,
    `disabled`, `anonymous`) appear only to the account itself and admins, so are optional."""
    properties: dict[str, Any] = {
        "id": {"type": "string", "format": "uuid", "readOnly": True},
        "created": {"type": "string", "format": "date-time", "readOnly": True},
        "updated": {"type": "string", "format": "date-time", "readOnly": True},
    }
    required = list(properties)
    for f in c.fields:
        if f.hidden:
            continue
        properties[f.name] = _field_schema(f)
        if f.system:
            properties[f.name]["readOnly"] = True  # managed by the auth API
        if not f.private:
            required.append(f.name)
    return {"type": "object", "properties": properties, "required": required}


def _write_schema(c: Collection, creating: bool) -> dict[str, Any]:
    """A create body (required fields required) or an update body (any subset). System fields
    (users' auth fields) are written by the auth API only, so they are not offered here; a
    create may choose the id, an update may not change it (the id is in the path)."""
    properties: dict[str, Any] = {}
    if creating:
        properties["id"] = {"type": "string", "format": "uuid", "description": "A client-chosen id"}
    writable = [f for f in c.fields if f.type != "file" and not f.system]  # files are uploaded
    for f in writable:
        properties[f.name] = _field_schema(f, writing=True)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    required = [f.name for f in writable if f.required and f.default is None]
    if creating and required:
        schema["required"] = required
    return schema


def _page_schema(title: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": ref(f"{title}Record")},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "total": {"type": ["integer", "null"]},
            "next_cursor": {"type": ["string", "null"]},
        },
        "required": ["items", "page", "per_page", "total", "next_cursor"],
    }


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "request_id": {"type": "string"},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
                "required": ["code", "message"],
            }
        },
        "required": ["error"],
    }


def _simple(summary: str, operation_id: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": [],
        "responses": {"200": {"description": "OK"}, "503": {"description": "Not ready"}},
    }
