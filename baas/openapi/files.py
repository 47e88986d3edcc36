"""OpenAPI paths of the file routes (downloads and file tokens) and the multipart bodies of
record writes to collections with file fields."""

from __future__ import annotations

from typing import Any

from baas.openapi.common import errors, json_content
from baas.schema.models import Collection

_QUERY = [
    ("thumb", "A thumbnail size the field declares, such as 100x100."),
    ("download", "true: send as an attachment (true or false only)."),
    ("token", "A file token (POST /api/files/token) for protected files."),
]


def files_paths() -> dict[str, Any]:
    path_params = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
        for n in ("collection", "id", "name")
    ]
    query = [
        {"name": n, "in": "query", "description": d, "schema": {"type": "string"}}
        for n, d in _QUERY
    ]
    download = {
        "operationId": "downloadFile",
        "tags": ["files"],
        "summary": "Download a file (ranges, conditional requests, thumbnails)",
        "parameters": [*path_params, *query],
        "responses": {
            "200": {"description": "The file", "content": {"*/*": {"schema": {"type": "string"}}}},
            "206": {"description": "A range of the file"},
            "302": {"description": "Redirect to a presigned URL"},
            "304": {"description": "Not modified"},
            "416": {"description": "Range not satisfiable"},
            **errors("400", "401", "404", "503"),
        },
    }
    token = {
        "operationId": "fileToken",
        "tags": ["files"],
        "summary": "A short-lived token for protected file URLs",
        "responses": {
            "200": {
                "description": "The token",
                "content": json_content(
                    {
                        "type": "object",
                        "properties": {"token": {"type": "string"}, "expires": {"type": "integer"}},
                    }
                ),
            },
            **errors("401"),
        },
    }
    head = {**download, "operationId": "headFile", "summary": "A file's headers"}
    return {
        "/api/files/token": {"post": token},
        "/api/files/{collection}/{id}/{name}": {"get": download, "head": head},
    }


def multipart_body(c: Collection) -> dict[str, Any] | None:
    """The multipart/form-data body of a write with uploads, for collections with file fields."""
    fields = [f for f in c.fields if f.type == "file"]
    if not fields:
        return None
    binary = {"type": "string", "format": "binary"}
    properties: dict[str, Any] = {"@json": {"type": "string", "description": "Other fields."}}
    for f in fields:
        properties[f.name] = {"type": "array", "items": binary} if f.multiple else binary
        if f.multiple:
            properties[f"{f.name}+"] = {"type": "array", "items": binary}
    return {"multipart/form-data": {"schema": {"type": "object", "properties": properties}}}
