"""What a read returns: `fields=` (projection) and `expand=`; and rows -> records.

Rows come back with helper columns (`_e_<field>` for expanded records, `_s<n>` for sort values,
`_total`, `_ok`, `_inserted`): records keep their fields, and expanded ones under "expand".
"""

from __future__ import annotations

from typing import Any

from baas.config import Settings
from baas.errors import InvalidParameter
from baas.records.expand import PREFIX, parse_expand
from baas.records.sql import ReadShape, output_columns
from baas.schema.models import Collection

MAX_FIELDS_PARAM = 100
DEFAULT = ReadShape()


def read_shape(
    c: Collection, fields: str | None, expand: str | None, settings: Settings
) -> ReadShape:
    """The shape `fields=` and `expand=` ask for; 400 naming anything unknown."""
    if not fields and not expand:
        return DEFAULT
    expanded = parse_expand(expand, settings.max_expand, settings.max_expand_depth)
    return ReadShape(fields=_projection(c, fields), expand=expanded)


def _projection(c: Collection, fields: str | None) -> tuple[str, ...] | None:
    if not fields:
        return None
    names = tuple(dict.fromkeys(n.strip() for n in fields.split(",") if n.strip()))
    if not names or len(names) > MAX_FIELDS_PARAM:
        raise InvalidParameter(f"fields names 1-{MAX_FIELDS_PARAM} fields", parameter="fields")
    visible = set(output_columns(c))
    unknown = [n for n in names if n not in visible]
    if unknown:
        raise InvalidParameter(f"{c.name} has no field {unknown[0][:60]!r}", parameter="fields")
    return names


def to_record(row: Any, plain: bool) -> dict[str, Any]:
    """A row as the record clients see; `plain` rows have no helper columns (the fast path)."""
    if plain:
        return dict(row)
    record: dict[str, Any] = {}
    expanded: dict[str, Any] = {}
    for key, value in row.items():
        if key.startswith(PREFIX):
            expanded[key[len(PREFIX) :]] = value
        elif not key.startswith("_"):
            record[key] = value
    if expanded:
        record["expand"] = expanded
    return record
