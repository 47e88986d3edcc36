"""Record bodies -> column values: every field checked, every problem reported at once.

Runs before any SQL: unknown fields, read-only system fields, wrong types, bounds, NUL characters
and missing required values are 400s listing each field with a stable code.
"""

from __future__ import annotations

from typing import Any

from baas.errors import BadRequest, ValidationFailed, field_error
from baas.schema.fields import FieldValueError, parse_value
from baas.schema.ids import record_id
from baas.schema.models import Collection

READ_ONLY = ("created", "updated")


def validate_create(c: Collection, body: Any) -> tuple[str | None, dict[str, Any]]:
    """(client-chosen id or None, column values) for a new record."""
    values, errors = _values(c, _object(body))
    chosen = None
    if "id" in body:
        chosen = record_id(body["id"])
        if chosen is None:
            errors["id"] = field_error(
                "invalid_id", "must be a UUID, or left out to let the server choose one"
            )
    for f in c.fields:
        if f.required and f.default is None and f.type != "file" and f.name not in body:
            errors[f.name] = field_error("required", "is required")
    if errors:
        raise ValidationFailed(errors)
    return chosen, values


def validate_update(c: Collection, body: Any, current_id: str) -> dict[str, Any]:
    """Column values for a partial update of record `current_id`."""
    values, errors = _values(c, _object(body))
    if "id" in body and record_id(body["id"]) != current_id:
        errors["id"] = field_error("read_only", "a record's id cannot change")
    if errors:
        raise ValidationFailed(errors)
    return values


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object of field values", code="invalid_body")
    return body


def _values(
    c: Collection, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    values: dict[str, Any] = {}
    errors: dict[str, dict[str, str]] = {}
    for key, raw in body.items():
        if key == "id":
            continue
        if key in READ_ONLY:
            errors[key] = field_error("read_only", "is set by the server")
            continue
        f = c.field(key)
        if f is None:
            errors[key] = field_error("unknown_field", f"{c.name} has no field {key!r}")
            continue
        if f.system:
            errors[key] = field_error("read_only", "is managed by the auth API (/api/auth)")
            continue
        if raw is None:
            if f.multiple and not f.required:
                values[key] = []
            elif f.not_null:
                code = "required" if f.required else "not_nullable"
                errors[key] = field_error(code, "must not be null")
            else:
                values[key] = None
            continue
        try:
            values[key] = parse_value(f, raw)
        except FieldValueError as exc:
            errors[key] = field_error(exc.code, exc.message)
    if len(errors) > 50:  # a body of a million unknown keys gets a bounded answer
        errors = dict(list(errors.items())[:50])
    return values, errors
