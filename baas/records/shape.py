"""What a read returns: `fields=` (projection) and `expand=`; and rows -> records.

Rows come back with helper columns (`_e<n>` for the n-th expanded relation, `_s<n>` for sort
values, `_own`, `_total`, `_ok`, `_inserted`), all positional or fixed, none made of a field name:
records keep their fields, expanded ones under "expand", and lose their private fields when the
row is someone else's account (`_own` false).
"""

from __future__ import annotations

from typing import Any

from baas.config import Settings
from baas.errors import InvalidParameter
from baas.records import privacy
from baas.records.expand import PREFIX, expand_names, parse_expand
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


def is_plain(c: Collection, shape: ReadShape, admin: bool) -> bool:
    """Whether rows of this read have no helper columns (the fast path of `to_record`)."""
    return shape == DEFAULT and not privacy.masks(c, admin)


def to_record(
    row: Any, c: Collection, shape: ReadShape = DEFAULT, plain: bool = False
) -> dict[str, Any]:
    """A row as the record clients see; `plain` rows have no helper columns (the fast path)."""
    if plain:
        return dict(row)
    record: dict[str, Any] = {}
    expanded: dict[str, Any] = {}
    own = True
    names = expand_names(shape.expand)
    for key, value in row.items():
        if not key.startswith("_"):
            record[key] = value
        elif key == privacy.OWN:
            own = value
        elif key.startswith(PREFIX) and key[len(PREFIX) :].isdigit():
            expanded[names[int(key[len(PREFIX) :])]] = value
    if not own:
        privacy.strip(record, c)
    if expanded:
        record["expand"] = expanded
    return record
