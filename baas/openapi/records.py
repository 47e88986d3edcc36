"""OpenAPI paths of the records API: each collection's list, get, create, update, upsert and
delete, and the batch endpoint, with the query-string bounds the server enforces."""

from __future__ import annotations

from typing import Any

from baas.config import Settings
from baas.http.list_params import MAX_PARAM_LENGTH
from baas.openapi.common import OPTIONAL_AUTH, errors, json_content, ref
from baas.openapi.files import multipart_body
from baas.records.listing import MAX_SEARCH_LENGTH
from baas.schema.models import Collection

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
MAX_PAGE = 10**9  # the list handler's bound on `page` (deeper offsets are refused by max_offset)


def _text(name: str, description: str, max_length: int = MAX_PARAM_LENGTH) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "schema": {"type": "string", "maxLength": max_length},
        "description": description,
    }


def list_parameters(c: Collection, settings: Settings) -> list[dict[str, Any]]:
    """The query parameters of a list, bounded as `records.api` bounds them."""
    per_page = {"type": "integer", "minimum": 1, "maximum": settings.max_per_page}
    parameters = [
        {
            "name": "page",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            "description": f"Pages past an offset of {settings.max_offset} records are refused: "
            "follow next_cursor instead",
        },
        {
            "name": "per_page",
            "in": "query",
            "schema": {**per_page, "default": settings.default_per_page},
        },
        _text("sort", "Comma-separated fields, '-' for descending, e.g. -created,title"),
        {"name": "skip_total", "in": "query", "schema": {"type": "boolean"}},
        _text("cursor", "next_cursor of the previous page (keyset pagination)"),
        _text(
            "filter",
            "A condition, e.g. views > 10 AND author.name = 'Ann'",
            settings.max_filter_length,
        ),
    ]
    if c.search:  # a collection without search fields refuses `search`
        fields = ", ".join(c.search)
        parameters.append(
            _text("search", f"Full-text search over {fields}", MAX_SEARCH_LENGTH),
        )
    return [*parameters, *read_parameters()]


def read_parameters() -> list[dict[str, Any]]:
    return [
        _text("expand", "Relations to embed under 'expand', e.g. author,readers.team"),
        _text("fields", "Fields to return (the others are left out), e.g. id,title"),
    ]


def collection_paths(c: Collection, title: str, settings: Settings) -> dict[str, Any]:
    base = f"/api/collections/{c.name}/records"
    record = {"content": json_content(ref(f"{title}Record"))}
    uploads = multipart_body(c) or {}
    create = {"required": True, "content": {**json_content(ref(f"{title}Create")), **uploads}}
    update = {"required": True, "content": {**json_content(ref(f"{title}Update")), **uploads}}
    # PUT reads JSON only (uploads go through POST or PATCH): multipart is a 415 there.
    upsert = {"required": True, "content": json_content(ref(f"{title}Update"))}
    common = {"tags": [c.name], "security": OPTIONAL_AUTH}  # rules may admit anyone
    return {
        base: {
            "get": {
                **common,
                "operationId": f"list{title}",
                "summary": f"List {c.name}",
                "parameters": list_parameters(c, settings),
                "responses": {
                    "200": {
                        "description": "A page of records",
                        "content": json_content(ref(f"{title}Page")),
                    },
                    **errors("400", "401", "403", "404"),
                },
            },
            "post": {
                **common,
                "operationId": f"create{title}",
                "summary": f"Create a {c.name} record",
                "requestBody": create,
                "responses": {
                    "201": {"description": "Created", **record},
                    **errors("400", "401", "403", "404", "409"),
                },
            },
        },
        f"{base}/{{id}}": {
            "parameters": [_ID],
            "get": {
                **common,
                "operationId": f"get{title}",
                "summary": f"Get a {c.name} record",
                "parameters": read_parameters(),
                "responses": {
                    "200": {"description": "The record", **record},
                    **errors("400", "401", "403", "404"),
                },
            },
            "patch": {
                **common,
                "operationId": f"update{title}",
                "summary": f"Update fields of a {c.name} record",
                "requestBody": update,
                "responses": {
                    "200": {"description": "Updated", **record},
                    **errors("400", "401", "403", "404", "409"),
                },
            },
            "put": {
                **common,
                "operationId": f"upsert{title}",
                "summary": f"Create or update the {c.name} record with this id",
                "requestBody": upsert,
                "responses": {
                    "200": {"description": "Updated", **record},
                    "201": {"description": "Created", **record},
                    # 404: the record exists but the update rule does not admit the caller
                    **errors("400", "401", "403", "404", "409"),
                },
            },
            "delete": {
                **common,
                "operationId": f"delete{title}",
                "summary": f"Delete a {c.name} record",
                "responses": {
                    "204": {"description": "Deleted"},
                    **errors("401", "403", "404", "409"),
                },
            },
        },
    }


def batch_operation(settings: Settings) -> dict[str, Any]:
    op = {
        "type": "object",
        "properties": {
            "op": {"enum": ["create", "update", "upsert", "delete"]},
            "collection": {"type": "string"},
            "id": {"type": "string", "format": "uuid"},
            "body": {"type": "object"},
        },
        "required": ["op", "collection"],
    }
    operations = {
        "type": "array",
        "items": op,
        "minItems": 1,
        "maxItems": settings.max_batch_operations,
    }
    return {
        "operationId": "batch",
        "summary": "Run several writes in one transaction (all or nothing)",
        "security": OPTIONAL_AUTH,  # each operation is checked against its collection's rules
        "requestBody": {
            "required": True,
            "content": json_content(
                {
                    "type": "object",
                    "properties": {"operations": operations},
                    "required": ["operations"],
                }
            ),
        },
        "responses": {
            "200": {
                "description": "One result per operation",
                "content": json_content(
                    {
                        "type": "object",
                        "properties": {
                            "results": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "status": {"type": "integer"},
                                        "body": {"type": "object"},
                                    },
                                },
                            }
                        },
                    }
                ),
            },
            **errors("400", "401", "403", "404", "409"),
        },
    }
