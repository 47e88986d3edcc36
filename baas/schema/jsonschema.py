"""A JSON Schema for schema files, so editors validate and complete `baas.yaml` as you type.

Generated from the field-type table (`fields.TYPES`), so it never drifts from what the server
accepts; `baas schema jsonschema` prints it and `baas init` writes it next to the schema file.
"""

from __future__ import annotations

from typing import Any

from baas.schema.document import MAX_INDEX_FIELDS
from baas.schema.fields import TYPES
from baas.schema.models import ON_DELETE

NAME_PATTERN = "^[a-z][a-z0-9_]{0,62}$"

_OPTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "required": {"type": "boolean", "description": "Must be present and not empty."},
    "nullable": {"type": "boolean", "description": "May hold null (default true)."},
    "unique": {"type": "boolean", "description": "No two records share a value."},
    "hidden": {"type": "boolean", "description": "Never returned nor filterable by clients."},
    "default": {"description": "Value for new records; 'now' for datetime/date."},
    "renamed_from": {
        "type": "string",
        "pattern": NAME_PATTERN,
        "description": "The field's previous name: rename it, keeping the data.",
    },
    "min": {"type": "number", "description": "Minimum value, length or number of items."},
    "max": {"type": "number", "description": "Maximum value, length or number of items."},
    "pattern": {"type": "string", "description": "Regular expression the whole text must match."},
    "values": {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "minItems": 1,
        "uniqueItems": True,
        "description": "Allowed values.",
    },
    "multiple": {"type": "boolean", "description": "Holds a list of values."},
    "collection": {
        "type": "string",
        "pattern": NAME_PATTERN,
        "description": "The related collection.",
    },
    "on_delete": {
        "enum": list(ON_DELETE),
        "description": "What happens when the related record is deleted.",
    },
    "max_size": {"type": ["integer", "string"], "description": "Largest file, e.g. 5MB."},
    "mime_types": {"type": "array", "items": {"type": "string"}},
    "protected": {"type": "boolean", "description": "Downloads need the view rule or a token."},
    "thumbs": {"type": "array", "items": {"type": "string", "pattern": "^\\d+x\\d+[tbf]?$"}},
}


def schema_file_jsonschema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://baas.dev/schema/baas.schema.json",
        "title": "baas schema file",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "collections": {
                "type": "object",
                "propertyNames": {"pattern": NAME_PATTERN},
                "additionalProperties": {"$ref": "#/$defs/collection"},
            }
        },
        "$defs": {
            "collection": _collection(),
            "field": {"oneOf": [{"enum": list(TYPES)}, *(_field(t) for t in TYPES)]},
            "index": {
                "oneOf": [
                    {"$ref": "#/$defs/fieldList"},
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["fields"],
                        "properties": {
                            "fields": {"$ref": "#/$defs/fieldList"},
                            "unique": {"type": "boolean"},
                        },
                    },
                ]
            },
            "fieldList": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "maxItems": MAX_INDEX_FIELDS,
                "uniqueItems": True,
            },
        },
    }


def _collection() -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "additionalProperties": False,
        "properties": {
            "renamed_from": {"type": "string", "pattern": NAME_PATTERN},
            "fields": {
                "type": ["object", "null"],
                "propertyNames": {"pattern": NAME_PATTERN},
                "additionalProperties": {"$ref": "#/$defs/field"},
            },
            "indexes": {"type": "array", "items": {"$ref": "#/$defs/index"}},
        },
    }


def _field(kind: str) -> dict[str, Any]:
    options = sorted(TYPES[kind].options - {"type", "id"})
    required = ["type"]
    if kind == "select":
        required.append("values")
    if kind == "relation":
        required.append("collection")
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": {"type": {"const": kind}, **{o: _OPTION_SCHEMAS[o] for o in options}},
    }
