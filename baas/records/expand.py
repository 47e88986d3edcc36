"""`expand=author,readers.team`: related records embedded in the answer, in the same statement.

Each embedded record is a JSON object built by PostgreSQL from its visible fields, subject to its
own collection's view rule (a record the caller may not view is simply absent: null, or left out
of a list); nested expands go inside. Depth and count are limited. Output columns and table
aliases are positional (`_e0`, `_e1`, ...), never made of field names: PostgreSQL cuts names
past 63 bytes, so two long relation names would otherwise meet in one column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from baas.errors import InvalidParameter
from baas.records.privacy import own_row, private_fields
from baas.rules.resolver import aliased, all_of, child_alias, column, named
from baas.schema.models import SYSTEM_FIELDS, Collection, Field, Schema

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_JSON_ARGS = 100  # PostgreSQL functions take at most 100 arguments
_DATETIME = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
PREFIX = "_e"  # `_e<n>`: the n-th expanded relation of the shape


@dataclass(frozen=True)
class Expand:
    name: str
    children: tuple[Expand, ...] = ()


def parse_expand(text: str | None, max_paths: int, max_depth: int) -> tuple[Expand, ...]:
    """`author,readers.team` -> a tree; shapes only (names are checked against the schema)."""
    if not text:
        return ()
    paths = [p.strip() for p in text.split(",") if p.strip()]
    if len(paths) > max_paths:
        raise InvalidParameter(f"expand at most {max_paths} paths", parameter="expand")
    tree: dict[str, dict] = {}  # type: ignore[type-arg]
    for path in paths:
        parts = path.split(".")
        if len(parts) > max_depth or not all(_NAME.fullmatch(p) for p in parts):
            raise InvalidParameter(
                f"expand path {path[:60]!r} is not field[.field] (at most {max_depth} deep)",
                parameter="expand",
            )
        node = tree
        for part in parts:
            node = node.setdefault(part, {})
    return _freeze(tree)


def _freeze(tree: dict) -> tuple[Expand, ...]:  # type: ignore[type-arg]
    return tuple(Expand(name, _freeze(children)) for name, children in sorted(tree.items()))


Visibility = Callable[[Collection, str], exp.Expression | None]


def expand_columns(
    schema: Schema,
    c: Collection,
    alias: str,
    expands: tuple[Expand, ...],
    visible: Visibility,
    auth_id: exp.Expression | None,
) -> list[exp.Expression]:
    """One `_e<n>` output column per expanded relation of `c` (row `alias`), in the order of
    `expands`; `auth_id` is the caller (None for admins: private fields are shown)."""
    return [
        named(_related(schema, c, alias, i, e, visible, auth_id), f"{PREFIX}{i}", quoted=True)
        for i, e in enumerate(expands)
    ]


def expand_names(expands: tuple[Expand, ...]) -> tuple[str, ...]:
    """The record keys of the `_e<n>` columns, by position."""
    return tuple(e.name for e in expands)


def _relation(c: Collection, name: str) -> Field:
    f = c.field(name)
    if f is None or f.hidden or f.type != "relation":
        raise InvalidParameter(
            f"cannot expand {name!r}: {c.name} has no relation field by that name",
            parameter="expand",
        )
    return f


def _related(
    schema: Schema,
    c: Collection,
    alias: str,
    position: int,
    e: Expand,
    visible: Visibility,
    auth_id: exp.Expression | None,
) -> exp.Expression:
    f = _relation(c, e.name)
    target = schema.collection(f.collection or "")
    assert target is not None
    inner = child_alias(alias, f"E{position}")  # upper case: no field-derived alias has it
    nested = [
        (child.name, _related(schema, target, inner, i, child, visible, auth_id))
        for i, child in enumerate(e.children)
    ]
    obj = record_json(target, inner, nested, auth_id)
    link_id = column("id", inner)
    parent = column(f.name, alias)
    where = all_of(
        exp.EQ(this=link_id, expression=exp.Any(this=exp.Paren(this=parent)))
        if f.multiple
        else exp.EQ(this=link_id, expression=parent),
        visible(target, inner),
    )
    if not f.multiple:
        return exp.Subquery(this=exp.select(obj).from_(aliased(target, inner)).where(where))
    position_in = exp.Anonymous(this="array_position", expressions=[parent.copy(), link_id.copy()])
    in_list_order = exp.Order(this=obj, expressions=[exp.Ordered(this=position_in)])
    aggregate = exp.Anonymous(this="json_agg", expressions=[in_list_order])
    empty = exp.Cast(this=exp.Literal.string("[]"), to=exp.DataType.build("JSON"))
    value = exp.Coalesce(this=aggregate, expressions=[empty])
    return exp.Subquery(this=exp.select(value).from_(aliased(target, inner)).where(where))


def record_json(
    c: Collection,
    alias: str,
    extra: list[tuple[str, exp.Expression]] | None = None,
    auth_id: exp.Expression | None = None,
) -> exp.Expression:
    """A JSON object of the record's visible fields (datetimes as UTC ISO 8601 with Z); for a
    caller (`auth_id`) who is not the account itself, without its private fields."""
    hidden = frozenset(private_fields(c))
    full = _record_object(c, alias, extra or [], frozenset())
    if not hidden or auth_id is None:
        return full
    others = _record_object(c, alias, [(k, v.copy()) for k, v in extra or []], hidden)
    return exp.Case(ifs=[exp.If(this=own_row(alias, auth_id), true=full)], default=others)


def _record_object(
    c: Collection, alias: str, extra: list[tuple[str, exp.Expression]], leave_out: frozenset[str]
) -> exp.Expression:
    pairs: list[exp.Expression] = []
    for name in (*SYSTEM_FIELDS, *(f.name for f in c.fields if not f.hidden)):
        if name in leave_out:
            continue
        f = c.field(name)
        kind = f.type if f else ("relation" if name == "id" else "datetime")
        pairs += [exp.Literal.string(name), _json_value(column(name, alias), kind)]
    if extra:
        expands = []
        for name, node in extra:
            expands += [exp.Literal.string(name), node]
        pairs += [exp.Literal.string("expand"), _build(expands)]
    return _build(pairs)


def _json_value(col: exp.Expression, kind: str) -> exp.Expression:
    if kind != "datetime":
        return col
    utc = exp.AtTimeZone(this=col, zone=exp.Literal.string("UTC"))
    return exp.Anonymous(this="to_char", expressions=[utc, exp.Literal.string(_DATETIME)])


def _build(pairs: list[exp.Expression]) -> exp.Expression:
    if len(pairs) <= _JSON_ARGS:
        return exp.Anonymous(this="json_build_object", expressions=pairs)
    # Wider records: jsonb objects merged with || (jsonb does not keep the field order).
    chunks: list[exp.Expression] = [
        exp.Anonymous(this="jsonb_build_object", expressions=pairs[i : i + _JSON_ARGS])
        for i in range(0, len(pairs), _JSON_ARGS)
    ]
    merged: exp.Expression = chunks[0]
    for chunk in chunks[1:]:
        merged = exp.DPipe(this=merged, expression=chunk)
    return merged
