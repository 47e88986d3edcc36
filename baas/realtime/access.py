"""Who may see which changes: every (subscriber, change) pair judged in ONE statement.

The same rule engine as REST decides, against the row as committed: the list rule for collection
subscriptions, the view rule for record subscriptions, plus the subscription's own filter; and
the row before an update is judged too, so a record leaving a subscriber's view is told apart
from one that was never in it. Each subscriber row carries its `auth.id` and the index of its
subscription shape (`Spec`); each change row carries the record before and after, as JSON.
Subscribers with nothing to evaluate (a public rule and no filter or expand; admins without a
filter) never reach this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlglot import exp

from baas.context import AppContext
from baas.db.sqltree import Compiled, Params, column, template
from baas.records.expand import Expand, expand_columns
from baas.rules import engine
from baas.rules.resolver import all_of, named, only_where
from baas.schema.models import TABLE_SCHEMA, Collection

NEW, OLD = "n", "o"


@dataclass(frozen=True)
class Spec:
    """What a subscription asks, as far as deciding and shaping its events goes."""

    operation: str  # list (a collection) or view (one record)
    filter: str | None = None
    expand: tuple[Expand, ...] = ()
    admin: bool = False
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # a dict key of every fan-out: hashed once
        object.__setattr__(self, "_hash", hash((self.operation, self.filter, self.expand)))

    def __hash__(self) -> int:
        return self._hash

    def free(self, c: Collection) -> bool:
        """Whether its events need no query: nothing to filter or expand, and no rule."""
        if self.filter or self.expand:
            return False
        return self.admin or c.rules.for_operation(self.operation) == ""


@dataclass(frozen=True, slots=True)
class Verdict:
    new: bool  # may see the record as it is now
    old: bool  # could see it as it was
    expand: Any  # the expanded relations of the new row (a dict), or None


def check(ctx: AppContext, c: Collection, spec: Spec) -> None:
    """Compile the spec's conditions once, so a bad filter is refused at subscribe time
    (FilterError, Locked) rather than when the first change comes."""
    _statement(ctx, c, (spec,))


def reads_auth(ctx: AppContext, c: Collection, spec: Spec) -> bool:
    """Whether the spec's verdict depends on who asks (else one evaluation serves everyone)."""

    def build() -> bool:
        return '"s"."auth"' in _statement(ctx, c, (spec,)).sql

    return ctx.schema.lru(("realtime-reads-auth", c.name, spec), build)


def _statement(ctx: AppContext, c: Collection, specs: tuple[Spec, ...]) -> Compiled:
    def build() -> Compiled:
        p = Params()
        auth = column("auth", "s")
        spec_no = column("spec", "s")

        def per_spec(make: Any) -> exp.Expression:
            values: list[exp.Expression] = [make(spec) for spec in specs]
            if len(values) == 1:
                return values[0]
            whens = [exp.If(this=exp.Literal.number(i), true=v) for i, v in enumerate(values)]
            return exp.Case(this=spec_no, ifs=whens)

        def ok(alias: str) -> Any:
            return lambda spec: _condition(ctx, c, spec, alias, p, auth)

        def expanded(spec: Spec) -> exp.Expression:
            if not spec.expand:
                return exp.Null()
            visible = engine.related_condition(
                ctx.schema.schema, "view", p, ctx.query_limits, auth_id=auth, admin=spec.admin
            )
            columns = expand_columns(
                ctx.schema.schema,
                c,
                NEW,
                spec.expand,
                visible or (lambda _c, _a: None),
                None if spec.admin else auth,
            )
            pairs: list[exp.Expression] = []
            for e, col in zip(spec.expand, columns, strict=True):
                pairs += [exp.Literal.string(e.name), col.this]
            return exp.Anonymous(this="json_build_object", expressions=pairs)

        # The rows are decoded once per change (materialized), not once per (subscriber,
        # change) pair; `_k` cannot clash with a field (field names start with a letter).
        query = template(
            "WITH __nr AS MATERIALIZED (SELECT __ch.__k, __x.* FROM unnest(CAST(CAST(__news AS "
            "TEXT[]) AS JSONB[])) WITH ORDINALITY AS __ch(__j, __k) CROSS JOIN LATERAL "
            "jsonb_populate_record(CAST(NULL AS __sc.__t), __ch.__j) AS __x), "
            "__or AS MATERIALIZED (SELECT __ch.__k, __x.* FROM unnest(CAST(CAST(__olds AS "
            "TEXT[]) AS JSONB[])) WITH ORDINALITY AS __ch(__j, __k) CROSS JOIN LATERAL "
            "jsonb_populate_record(CAST(NULL AS __sc.__t), __ch.__j) AS __x) "
            "SELECT __s.__i, __n.__k, __new_ok, __old_ok, __ex "
            "FROM unnest(CAST(__auths AS UUID[]), CAST(__specs AS INT[])) "
            "WITH ORDINALITY AS __s(__auth, __spec, __i) "
            "CROSS JOIN __nr AS __n JOIN __or AS __o ON __o.__k = __n.__k",
            s="s",
            i="i",
            ch="ch",
            k="_k",
            j="j",
            x="x",
            nr="new_rows",
            auth="auth",
            spec="spec",
            n=NEW,
            o=OLD,
            sc=TABLE_SCHEMA,
            t=c.name,
            auths=p.arg("auths"),
            specs=p.arg("specs"),
            news=p.arg("news"),
            olds=p.arg("olds"),
            new_ok=named(per_spec(ok(NEW)), "new_ok"),
            old_ok=named(per_spec(ok(OLD)), "old_ok"),
            ex=named(per_spec(expanded) if any(s.expand for s in specs) else exp.Null(), "ex"),
            **{"or": "old_rows"},
        )
        # Only pairs with something to send come back (with a per-user rule, few do), folded
        # into one row per subscriber: its verdicts as text (`<change><b|n|o>,...`: both
        # sides, the new side only, the old side only), a value many subscribers share and
        # the caller decodes once.
        expands: exp.Expression = exp.cast(exp.Null(), "text")
        if any(s.expand for s in specs):
            expands = template(
                "CAST(json_agg(__v.__ex ORDER BY __v.__k) AS TEXT)", v="v", ex="ex", k="_k"
            )
        seen = template(
            "SELECT __v.__i, string_agg(CAST(__v.__k + __base AS TEXT) || CASE WHEN __v.__new_ok "
            "THEN CASE WHEN __v.__old_ok THEN 'b' ELSE 'n' END ELSE 'o' END, ',' ORDER BY "
            "__v.__k), __expands FROM __q AS __v WHERE __v.__new_ok OR __v.__old_ok "
            "GROUP BY __v.__i",
            expands=expands,
            q=exp.Subquery(this=query),
            v="v",
            i="i",
            k="_k",
            ex="ex",
            base=exp.Cast(this=p.arg("base"), to=exp.DataType.build("int")),
            new_ok="new_ok",
            old_ok="old_ok",
        )
        return p.compile(seen)

    return ctx.schema.lru(("realtime", c.name, specs), build)


def _condition(
    ctx: AppContext, c: Collection, spec: Spec, alias: str, p: Params, auth: exp.Expression
) -> exp.Expression:
    """TRUE when the row `alias` exists and passes the rule and the filter (never NULL)."""
    schema, limits = ctx.schema.schema, ctx.query_limits
    try:
        rule = engine.rule_condition(
            schema, c, spec.operation, alias, p, limits, auth_id=auth, admin=spec.admin
        )
    except engine.Locked:
        return exp.false()
    condition = rule
    if spec.filter:
        wanted = engine.filter_condition(
            schema, c, spec.filter, alias, p, limits, auth_id=auth, admin=spec.admin
        )
        condition = all_of(rule, only_where(rule, wanted))
    present = exp.Not(this=exp.Is(this=column("id", alias), expression=exp.Null()))
    return exp.Coalesce(this=all_of(present, condition), expressions=[exp.false()])


Judged = tuple[str, str | None]  # a subscriber's verdicts and expansions, as the statement gives


async def judge(
    ctx: AppContext,
    c: Collection,
    specs: tuple[Spec, ...],
    subscribers: Sequence[tuple[str | None, int]],
    rows: Sequence[tuple[str | None, str | None]],
    base: int = 0,
) -> dict[int, Judged]:
    """What each subscriber may see of the changes, by subscriber index (those that may see
    nothing are absent): subscribers are (auth id, spec index); rows are (new json, old json),
    numbered from `base`. One statement, one round trip; `verdicts` decodes the values."""
    q = _statement(ctx, c, specs)
    args = {
        "auths": [a for a, _ in subscribers],
        "specs": [s for _, s in subscribers],
        "news": [n for n, _ in rows],
        "olds": [o for _, o in rows],
        "base": base - 1,  # ordinality counts from 1
    }
    result = await ctx.db.fetch(q.sql, *q.bind(args))
    return {r[0] - 1: (r[1], r[2]) for r in result}


def verdicts(judged: Sequence[Judged]) -> list[tuple[int, Verdict]]:
    """A subscriber's (change index, verdict) pairs, in order, from `judge`'s values."""
    out = []
    for codes, expands in judged:
        expand = orjson.loads(expands) if expands is not None else None
        for n, item in enumerate(codes.split(",")):
            side = item[-1]
            ex = None if expand is None else expand[n]
            out.append((int(item[:-1]), Verdict(side != "o", side != "n", ex)))
    return out
