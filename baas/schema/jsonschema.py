"""A JSON Schema for schema files, so editors validate and complete `baas.yaml` as you type.

Generated from the field-type table (`fields.TYPES`), the name rules (`names`) and the limits in
`document`, so it never drifts from what the server accepts. What JSON Schema cannot say (a
relation's target exists, min <= max, an index names real fields, a default fits its field) is
left to the server, which reports it with the same paths. `baas schema jsonschema` prints it and
`baas init` writes it next to the schema file.
"""

from __future__ import annotations

from typing import Any

from baas.schema.document import (
    MAX_COLLECTIONS,
    MAX_FIELDS,
    MAX_INDEX_FIELDS,
    MAX_PATTERN_LENGTH,
    MAX_RULE_LENGTH,
    MAX_SELECT_VALUES,
    SEARCH_LANGUAGES,
)
from baas.schema.fields import TYPES, TypeSpec
from baas.schema.models import ON_DELETE, RULE_OPERATIONS, SYSTEM_FIELDS
from baas.schema.names import MAX_IDENTIFIER_BYTES, RECORD_KEYS, RESERVED, SYSTEM_COLUMNS
from baas.schema.push_triggers import JSONSCHEMA as PUSH_JSONSCHEMA

NAME_PATTERN = f"^[a-z][a-z0-9_]{{0,{MAX_IDENTIFIER_BYTES - 1}}}$"
# ECMA 262 twins of the patterns in `document` (which match the whole, stripped value).
SIZE_PATTERN = r"^\s*0*[1-9][0-9]*\s*(?:[bB]|[kKmMgG][iI]?[bB])?\s*$"
MIME_PATTERN = r"^[a-z0-9][a-z0-9!#$&^_.+-]*/(?:\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$"
THUMB_PATTERN = r"^[0-9]{1,4}x[0-9]{1,4}[tbf]?$"

_COUNT = {"type": "integer", "minimum": 0}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "text": {"type": ["string", "null"]},
    "email": {"type": ["string", "null"]},
    "url": {"type": ["string", "null"]},
    "integer": {"type": ["integer", "null"]},
    "number": {"type": ["number", "null"]},
    "bool": {"type": ["boolean", "null"]},
    "datetime": {"type": ["string", "null"], "description": "An ISO 8601 date-time, or 'now'."},
    "date": {"type": ["string", "null"], "description": "An ISO 8601 date, or 'now'."},
    "json": {},
    "select": {"type": ["string", "array", "null"], "items": {"type": "string"}},
}


def _name(reserved: frozenset[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """A collection or field name: an identifier that is no reserved word and no system column."""
    taken = sorted(RESERVED | SYSTEM_COLUMNS | frozenset(reserved))
    return {
        "type": "string",
        "pattern": NAME_PATTERN,
        "not": {"anyOf": [{"enum": taken}, {"pattern": "^pg_"}]},
    }


_OPTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "required": {"type": "boolean", "description": "Must be present and not empty."},
    "nullable": {"type": "boolean", "description": "May hold null (default true)."},
    "unique": {"type": "boolean", "description": "No two records share a value."},
    "hidden": {"type": "boolean", "description": "Never returned nor filterable by clients."},
    "renamed_from": {
        **_name(),
        "description": "The previous name: rename, keeping the data.",
    },
    "pattern": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_PATTERN_LENGTH,
        "format": "regex",
        "description": "Regular expression the whole text must match.",
    },
    "values": {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^\\u0000]*$"},
        "minItems": 1,
        "maxItems": MAX_SELECT_VALUES,
        "uniqueItems": True,
        "description": "Allowed values.",
    },
    "multiple": {"type": "boolean", "description": "Holds a list of values."},
    "collection": {**_name(), "description": "The related collection."},
    "on_delete": {
        "enum": list(ON_DELETE),
        "description": "What happens when the related record is deleted.",
    },
    "max_size": {
        "oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": SIZE_PATTERN}],
        "description": "Largest file: bytes, or a size such as 5MB or 512KiB.",
    },
    "mime_types": {
        "type": "array",
        "items": {"type": "string", "pattern": MIME_PATTERN},
        "description": "Accepted MIME types, such as image/png or image/*.",
    },
    "protected": {"type": "boolean", "description": "Downloads need the view rule or a token."},
    "serve_inline": {
        "type": "boolean",
        "description": "Serve HTML, SVG and XML inline (sandboxed) instead of as attachments.",
    },
    "thumbs": {
        "type": "array",
        "items": {"type": "string", "pattern": THUMB_PATTERN},
        "description": "Thumbnail sizes, such as 100x100, 0x200 or 300x300t.",
    },
}


def schema_file_jsonschema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a schema file."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://baas.dev/schema/baas.schema.json",
        "title": "baas schema file",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "collections": {
                "type": ["object", "null"],
                "maxProperties": MAX_COLLECTIONS,
                "propertyNames": _name(),
                "additionalProperties": {"$ref": "#/$defs/collection"},
            }
        },
        "$defs": {
            "collection": _collection(),
            "field": {
                "anyOf": [
                    {"enum": list(TYPES), "description": "Short form: just the type."},
                    {"$ref": "#/$defs/fieldDefinition"},
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["private"],
                        "properties": {"private": {"type": "boolean"}},
                        "description": "users only: a built-in auth field (verified, disabled, "
                        "anonymous) with `private: false` shows it to other users.",
                    },
                ]
            },
            "fieldDefinition": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": list(TYPES)}},
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": kind}}},
                        "then": {"$ref": f"#/$defs/{kind}Field"},
                    }
                    for kind in TYPES
                ],
            },
            **{f"{kind}Field": _field(spec) for kind, spec in TYPES.items()},
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
            "renamed_from": _OPTION_SCHEMAS["renamed_from"],
            "fields": {
                "type": ["object", "null"],
                "maxProperties": MAX_FIELDS,
                "propertyNames": _name((*SYSTEM_FIELDS, *RECORD_KEYS)),
                "additionalProperties": {"$ref": "#/$defs/field"},
            },
            "indexes": {
                "type": ["array", "null"],
                "items": {"$ref": "#/$defs/index"},
                "uniqueItems": True,
            },
            "rules": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "description": "Who may do what: null = locked (service keys and superusers "
                'only), "" = anyone, else a condition such as '
                '"published = true OR author = auth.id".',
                "properties": {
                    op: {"type": ["string", "null"], "maxLength": MAX_RULE_LENGTH}
                    for op in RULE_OPERATIONS
                },
            },
            "search": {
                "type": ["array", "null"],
                "items": {"type": "string"},
                "minItems": 1,
                "uniqueItems": True,
                "description": "Text fields searched by ?search= (a GIN index is created).",
            },
            "search_language": {"enum": list(SEARCH_LANGUAGES)},
            "push": PUSH_JSONSCHEMA,
        },
    }


def _field(spec: TypeSpec) -> dict[str, Any]:
    """The long form of one type: its options, their values and how they depend on each other."""
    options = sorted(spec.options - {"type", "id"})
    properties = {o: _option(spec, o) for o in options}
    required = ["type"]
    if spec.name == "select":
        required.append("values")
    if spec.name == "relation":
        required.append("collection")
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": {"type": {"const": spec.name}, **properties},
        "allOf": _rules(spec),
    }


def _option(spec: TypeSpec, option: str) -> dict[str, Any]:
    if option == "default":
        if not spec.can_default:
            return {"type": "null", "description": f"A {spec.name} field has no default."}
        return {**_DEFAULTS[spec.name], "description": "Value for new records."}
    if option == "unique" and not spec.can_unique:
        return {"const": False, "description": f"A {spec.name} field cannot be unique."}
    if option in ("min", "max"):
        if spec.length_bounds:
            return {**_COUNT, "description": f"{option.capitalize()}imum length."}
        if spec.name in ("integer", "number"):
            return {"type": "number", "description": f"{option.capitalize()}imum value."}
        return {**_COUNT, "description": f"{option.capitalize()}imum number of items."}
    return _OPTION_SCHEMAS[option]


def _is(option: str, value: Any) -> dict[str, Any]:
    return {"properties": {option: {"const": value}}, "required": [option]}


def _rules(spec: TypeSpec) -> list[dict[str, Any]]:
    """Constraints between options (each also checked, with the same meaning, by the server)."""
    rules: list[dict[str, Any]] = [
        {  # a NOT NULL column needs a value for new records
            "if": _is("nullable", False),
            "then": {
                "anyOf": [
                    {"properties": {"default": {"not": {"type": "null"}}}, "required": ["default"]},
                    _is("required", True),
                    _is("multiple", True),
                ]
            },
        }
    ]
    if "multiple" in spec.options:
        rules.append(
            {"if": _is("multiple", True), "then": {"properties": {"unique": {"const": False}}}}
        )
    if spec.name in ("select", "relation", "file"):  # min/max count items
        rules.append(
            {
                "if": {"not": _is("multiple", True)},
                "then": {"properties": {"min": False, "max": False}},
            }
        )
    if spec.name == "relation":
        rules.append(
            {
                "if": {"allOf": [_is("on_delete", "set_null"), _is("required", True)]},
                "then": _is("multiple", True),
            }
        )
    return rules
