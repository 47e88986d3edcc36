"""Private fields: fields of a users record that only the account itself and admins may see.

A `private` field (the built-in `verified`, `disabled` and `anonymous`, unless the schema file
shares them) is left out of every answer about someone else's account, wherever the rules let
the caller see the record: lists, gets, writes, expanded relations and realtime events. Reads mask
it in SQL (the value never leaves the database for others): a top-level row carries the flag
`_own` and the key is dropped from the record; an embedded record is built without it.
Client filters and sorts cannot name it either (see `baas.rules.resolver`), so nobody can probe
other accounts through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlglot import exp

from baas.db.sqltree import column, ident
from baas.schema.models import Collection

OWN = "_own"  # no field can start with "_"


def private_fields(c: Collection) -> tuple[str, ...]:
    """The fields of `c` that only the account itself (and admins) may see."""
    return tuple(f.name for f in c.fields if f.private and not f.hidden)


def own_row(alias: str | None, auth_id: exp.Expression) -> exp.Expression:
    """TRUE when the row `alias` is the caller's own account (never NULL)."""
    same = exp.EQ(this=column("id", alias), expression=auth_id.copy())
    return exp.Coalesce(this=same, expressions=[exp.false()])


def record_columns(
    c: Collection, names: Iterable[str], alias: str | None, auth_id: exp.Expression | None
) -> list[exp.Expression]:
    """Output columns `names` of row `alias` as the caller (`auth_id`; None for admins, who see
    everything) may see them: private ones masked for other accounts, plus the `_own` flag."""
    names = tuple(names)
    hidden = set(private_fields(c)) & set(names) if auth_id is not None else set()
    if not hidden or auth_id is None:
        return [column(n, alias) for n in names]
    own = own_row(alias, auth_id)
    columns: list[exp.Expression] = []
    for n in names:
        value: exp.Expression = column(n, alias)
        if n in hidden:
            value = _as(exp.Case(ifs=[exp.If(this=own.copy(), true=value)]), n)
        columns.append(value)
    columns.append(_as(own, OWN))
    return columns


def _as(node: exp.Expression, name: str) -> exp.Expression:
    return exp.Alias(this=node, alias=ident(name))


def masks(c: Collection, admin: bool) -> bool:
    """Whether this caller's rows of `c` carry masked fields (and the `_own` flag)."""
    return not admin and any(f.private and not f.hidden for f in c.fields)


def strip(record: dict[str, Any], c: Collection) -> dict[str, Any]:
    """`record` without the private fields of `c` (someone else's account)."""
    for name in private_fields(c):
        record.pop(name, None)
    return record
