"""Which of many callers may see one record, in one query (realtime and file downloads use it).

The caller's rule is evaluated once per subscriber inside a single statement: `auth.id` is not a
parameter but each subscriber's id in turn, taken from an array (null for anonymous callers).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from baas.context import AppContext
from baas.db.sqltree import Compiled, Params, template
from baas.errors import NotFound
from baas.records.access import query_limits
from baas.rules import engine
from baas.rules.resolver import pg_type
from baas.schema.models import TABLE_SCHEMA, Collection


def _statement(ctx: AppContext, c: Collection, operation: str) -> Compiled | None:
    """The statement for `operation` on `c` (None when locked), cached per schema version."""

    def build() -> Compiled | None:
        p = Params()
        subscript = exp.Bracket(
            this=exp.Paren(this=exp.Cast(this=p.arg("ids"), to=pg_type("uuid[]"))),
            expressions=[exp.column("i")],
        )
        try:
            rule = engine.rule_condition(
                ctx.schema.schema,
                c,
                operation,
                "rec",
                p,
                query_limits(ctx),
                auth_id=subscript,
                admin=False,
            )
        except engine.Locked:
            return None
        query = template(
            "SELECT __i FROM generate_subscripts(CAST(__ids AS UUID[]), 1) AS __g(__i) "
            "WHERE EXISTS (SELECT 1 FROM __s.__t AS __rec WHERE __rec.id = __rid AND __cond)",
            i="i",
            g="g",
            rec="rec",
            s=TABLE_SCHEMA,
            t=c.name,
            ids=p.arg("ids"),
            rid=p.arg("id"),
            cond=exp.Paren(this=rule or exp.true()),
        )
        return p.compile(query)

    return ctx.schema.memo(("visible", c.name, operation), build)


async def visible_to(
    ctx: AppContext,
    name: str,
    record_id: str,
    user_ids: Sequence[str | None],
    operation: str = "view",
) -> list[bool]:
    """For each caller (a user id, or None for anonymous), may they `operation` this record?
    Service keys and superusers always may: leave them out."""
    if operation in ("create", "update"):
        raise ValueError("visible_to answers for existing records (list, view, delete)")
    c = ctx.schema.collection(name)
    if c is None:
        raise NotFound(f"no collection named {name!r}", code="collection_not_found")
    if not user_ids:
        return []
    q = _statement(ctx, c, operation)
    if q is None:
        return [False] * len(user_ids)
    rows = await ctx.db.fetch(q.sql, *q.bind({"ids": list(user_ids), "id": record_id}))
    allowed = {row[0] for row in rows}
    return [i + 1 in allowed for i in range(len(user_ids))]
