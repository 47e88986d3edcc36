"""SQL for records: one statement per operation, built as a tree, rendered once per shape.

Each builder returns a `Compiled` statement whose values are named arguments (`id`, `v.<field>`,
`limit`, ...), so the text is cached in the schema cache and only re-bound per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from baas.db.sqltree import Compiled, Params, column, ident, table
from baas.schema.cache import SchemaCache
from baas.schema.models import SYSTEM_FIELDS, TABLE_SCHEMA, Collection

TOTAL = "_total"  # no field can start with "_", so this never collides
INSERTED = "_inserted"


def output_columns(c: Collection) -> tuple[str, ...]:
    """Columns a record is returned with: system fields and every non-hidden field."""
    return SYSTEM_FIELDS + tuple(f.name for f in c.fields if not f.hidden)


def _select_list(c: Collection) -> list[exp.Expression]:
    return [column(n) for n in output_columns(c)]


def _table(c: Collection) -> exp.Table:
    return table(c.name, TABLE_SCHEMA)


def _returning(q: exp.Expression, columns: list[exp.Expression]) -> exp.Expression:
    q.set("returning", exp.Returning(expressions=columns))
    return q


def _id_eq(p: Params) -> exp.Expression:
    return exp.EQ(this=column("id"), expression=p.arg("id"))


def get_one(cache: SchemaCache, c: Collection) -> Compiled:
    def build() -> Compiled:
        p = Params()
        q = exp.select(*_select_list(c)).from_(_table(c)).where(_id_eq(p))
        return p.compile(q)

    return cache.memo(("get", c.name), build)


def insert(cache: SchemaCache, c: Collection, names: tuple[str, ...]) -> Compiled:
    """INSERT of the given columns (`id` too if the client chose it), RETURNING the record."""

    def build() -> Compiled:
        p = Params()
        q = _insert(c, names, p) if names else exp.Insert(this=_table(c), default=True)
        return p.compile(_returning(q, _select_list(c)))

    return cache.memo(("insert", c.name, names), build)


def _insert(c: Collection, names: tuple[str, ...], p: Params) -> exp.Insert:
    return exp.Insert(
        this=exp.Schema(this=_table(c), expressions=[ident(n) for n in names]),
        expression=exp.Values(
            expressions=[exp.Tuple(expressions=[p.arg(f"v.{n}") for n in names])]
        ),
    )


def upsert(cache: SchemaCache, c: Collection, names: tuple[str, ...]) -> Compiled:
    """Update the given columns of record `id`, or insert it if absent; says which happened.

    UPDATE first, then INSERT ... WHERE NOT EXISTS (updated row), in one statement: a plain
    INSERT ... ON CONFLICT would check NOT NULL on the proposed row before finding the conflict,
    so a partial body could never update a record with required fields. The INSERT still says
    ON CONFLICT DO NOTHING: when a concurrent upsert inserts the id first, this statement
    returns no row (rather than a unique violation) and the caller runs it again as an update.
    """

    def build() -> Compiled:
        p = Params()
        cols = _select_list(c)
        if names:
            sets = [exp.EQ(this=column(n), expression=p.arg(f"v.{n}")) for n in names]
            existing: exp.Expression = _returning(
                exp.Update(this=_table(c), expressions=sets, where=exp.Where(this=_id_eq(p))), cols
            )
        else:
            existing = exp.select(*cols).from_(_table(c)).where(_id_eq(p))
        absent = exp.Not(this=exp.Exists(this=exp.select(exp.Literal.number(1)).from_("u")))
        values = exp.select(p.arg("id"), *[p.arg(f"v.{n}") for n in names]).where(absent)
        insert = exp.Insert(
            this=exp.Schema(this=_table(c), expressions=[ident(n) for n in ("id", *names)]),
            expression=values,
            conflict=exp.OnConflict(action=exp.var("DO NOTHING"), conflict_keys=[ident("id")]),
        )
        _returning(insert, _select_list(c))
        outputs = [column(n) for n in output_columns(c)]
        query = exp.union(
            exp.select(*outputs, exp.alias_(exp.false(), INSERTED, quoted=True)).from_("u"),
            exp.select(*[o.copy() for o in outputs], exp.true()).from_("i"),
            distinct=False,
        )
        query.set(
            "with_",
            exp.With(
                expressions=[
                    exp.CTE(this=existing, alias=exp.TableAlias(this=exp.to_identifier("u"))),
                    exp.CTE(this=insert, alias=exp.TableAlias(this=exp.to_identifier("i"))),
                ]
            ),
        )
        return p.compile(query)

    return cache.memo(("upsert", c.name, names), build)


def update(cache: SchemaCache, c: Collection, names: tuple[str, ...]) -> Compiled:
    def build() -> Compiled:
        p = Params()
        sets = [exp.EQ(this=column(n), expression=p.arg(f"v.{n}")) for n in names]
        q = exp.Update(this=_table(c), expressions=sets, where=exp.Where(this=_id_eq(p)))
        return p.compile(_returning(q, _select_list(c)))

    return cache.memo(("update", c.name, names), build)


def delete(cache: SchemaCache, c: Collection) -> Compiled:
    def build() -> Compiled:
        p = Params()
        q = exp.Delete(this=_table(c), where=exp.Where(this=_id_eq(p)))
        return p.compile(_returning(q, [column("id")]))

    return cache.memo(("delete", c.name), build)


# -- lists ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    name: str
    descending: bool
    nullable: bool

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.name


def list_page(
    cache: SchemaCache,
    c: Collection,
    sort: tuple[SortKey, ...],
    with_total: bool,
    cursor_nulls: tuple[bool, ...] | None,
) -> Compiled:
    """One statement for a page: rows (LIMIT/OFFSET or keyset after a cursor), and the total.

    With a total, the count and the page are joined in one statement
    (`count LEFT JOIN LATERAL page`), so an empty page still carries the total.
    """

    def build() -> Compiled:
        p = Params()
        where: list[exp.Expression] = []
        if cursor_nulls is not None:
            where.append(_keyset(sort, cursor_nulls, p))
        page = exp.select(*_select_list(c)).from_(_table(c))
        for condition in where:
            page = page.where(condition)
        page = page.order_by(*[_order(k) for k in sort])
        page = page.limit(p.arg("limit")).offset(p.arg("offset"))
        if not with_total:
            return p.compile(page)
        count = exp.select(exp.alias_(exp.Count(this=exp.Star()), TOTAL, quoted=True)).from_(
            _table(c)
        )
        query = (
            exp.select(
                exp.column(TOTAL, "c", quoted=True), exp.Column(this=exp.Star(), table=ident("p"))
            )
            .from_(exp.alias_(exp.Subquery(this=count), "c", quoted=True))
            .join(
                exp.Lateral(this=exp.Subquery(this=page), alias=exp.TableAlias(this=ident("p"))),
                join_type="LEFT",
                on=exp.true(),
            )
        )
        return p.compile(query)

    return cache.memo(("list", c.name, sort, with_total, cursor_nulls), build)


def _order(k: SortKey) -> exp.Ordered:
    # PostgreSQL's defaults (NULLS LAST ascending, NULLS FIRST descending), stated explicitly
    # because the keyset condition below depends on them.
    return exp.Ordered(this=column(k.name), desc=k.descending, nulls_first=k.descending)


def _keyset(sort: tuple[SortKey, ...], nulls: tuple[bool, ...], p: Params) -> exp.Expression:
    """Rows strictly after the cursor row in the (null-aware) sort order."""

    def value(i: int) -> exp.Expression:
        return p.arg(f"cursor.{i}")  # registered only where used: unused $n have no type

    same_direction = len({k.descending for k in sort}) == 1
    if same_direction and not any(k.nullable for k in sort):
        left = exp.Tuple(expressions=[column(k.name) for k in sort])
        right = exp.Tuple(expressions=[value(i) for i in range(len(sort))])
        return (
            exp.LT(this=left, expression=right)
            if sort[0].descending
            else exp.GT(this=left, expression=right)
        )
    branches: list[exp.Expression] = []
    for i, key in enumerate(sort):
        if not key.descending and nulls[i]:
            continue  # NULLS LAST: nothing sorts after a null but other nulls (tie -> next key)
        parts: list[exp.Expression] = [_same(sort[j], value, j, nulls[j]) for j in range(i)]
        parts.append(_after(key, value, i, nulls[i]))
        branches.append(exp.and_(*parts) if len(parts) > 1 else parts[0])  # type: ignore[arg-type]
    if not branches:
        return exp.false()
    return exp.Paren(this=exp.or_(*branches)) if len(branches) > 1 else branches[0]


ValueOf = Callable[[int], exp.Expression]


def _same(key: SortKey, value: ValueOf, i: int, is_null: bool) -> exp.Expression:
    col = column(key.name)
    if is_null:
        return exp.Is(this=col, expression=exp.Null())
    return exp.EQ(this=col, expression=value(i))


def _after(key: SortKey, value: ValueOf, i: int, is_null: bool) -> exp.Expression:
    col = column(key.name)
    if key.descending:  # NULLS FIRST: after a null come the non-nulls; after v, smaller values
        if is_null:
            return exp.Not(this=exp.Is(this=col, expression=exp.Null()))
        return exp.LT(this=col, expression=value(i))
    greater = exp.GT(this=col, expression=value(i))
    if not key.nullable:
        return greater
    return exp.Paren(this=exp.or_(greater, exp.Is(this=col, expression=exp.Null())))
