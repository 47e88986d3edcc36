"""SQL for records: ONE statement per operation, with the access rule inside it.

Reads AND the rule (and the client's filter) into their WHERE; writes evaluate the rule on the row
as written, in the same statement (`baas.check_rule` raises and the write never happens), after
checking that the caller may view every record the row newly points to (`baas.check_relation`
raises, answered as a missing target). Each
statement is a tree rendered once per shape and kept in the schema cache; its values are named
arguments (`id`, `v.<field>`, `auth.id`, `body.<field>`, `limit`, `cursor.<n>`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from baas.db.sqltree import Compiled, Params, column, ident, table
from baas.query import QueryLimits
from baas.query.compile import group
from baas.records.expand import Expand, expand_columns
from baas.records.privacy import record_columns
from baas.rules import engine
from baas.rules.resolver import aliased, all_of, named, only_where, pg_type
from baas.schema.cache import SchemaCache
from baas.schema.ddl import search_document
from baas.schema.models import SYSTEM_FIELDS, TABLE_SCHEMA, Collection

ALIAS = "rec"
# Helper output columns: no field can start with "_", and none is made of a field name (those
# could pass PostgreSQL's 63-byte limit and be cut), so they never collide with a field.
TOTAL = "_total"
INSERTED = "_inserted"
SORT = "_s"  # `_s<n>`: the n-th sort value, when it is not an output column already


def output_columns(c: Collection) -> tuple[str, ...]:
    """Columns a record is returned with: system fields and every non-hidden field."""
    return SYSTEM_FIELDS + tuple(f.name for f in c.fields if not f.hidden)


@dataclass(frozen=True)
class SortKey:
    path: tuple[str, ...]
    descending: bool
    nullable: bool
    kind: str

    @property
    def name(self) -> str:
        return ".".join(self.path)

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.name


@dataclass(frozen=True)
class ReadShape:
    fields: tuple[str, ...] | None = None  # None: every visible field
    expand: tuple[Expand, ...] = ()


@dataclass(frozen=True)
class ListShape:
    read: ReadShape
    sort: tuple[SortKey, ...]
    filter: str | None = None
    search: bool = False
    with_total: bool = True
    cursor_nulls: tuple[bool, ...] | None = None


class _Build:
    """What one statement's rules, filters and paths compile against."""

    def __init__(self, cache: SchemaCache, limits: QueryLimits, c: Collection, admin: bool) -> None:
        self.schema = cache.schema
        self.limits = limits
        self.c = c
        self.admin = admin
        self.p = Params()
        self.auth_id = exp.Cast(this=self.p.arg("auth.id"), to=pg_type("uuid"))

    def rule(self, operation: str, alias: str, current_row: bool = False) -> exp.Expression | None:
        return engine.rule_condition(
            self.schema,
            self.c,
            operation,
            alias,
            self.p,
            self.limits,
            auth_id=self.auth_id,
            admin=self.admin,
            current_row=current_row,
        )

    def filter(self, text: str, alias: str) -> exp.Expression:
        return engine.filter_condition(
            self.schema,
            self.c,
            text,
            alias,
            self.p,
            self.limits,
            auth_id=self.auth_id,
            admin=self.admin,
        )

    def sort_value(self, key: SortKey, alias: str) -> exp.Expression:
        return engine.sort_value(
            self.schema,
            self.c,
            key.path,
            alias,
            self.p,
            self.limits,
            auth_id=self.auth_id,
            admin=self.admin,
        ).node

    @property
    def viewer(self) -> exp.Expression | None:
        """Whom private fields are shown to: the caller's account (None: admins see all)."""
        return None if self.admin else self.auth_id

    def outputs(self, alias: str | None, shape: ReadShape) -> list[exp.Expression]:
        names = shape.fields if shape.fields is not None else output_columns(self.c)
        columns = record_columns(self.c, names, alias, self.viewer)
        if shape.expand:
            assert alias is not None
            visible = engine.related_condition(
                self.schema, "view", self.p, self.limits, auth_id=self.auth_id, admin=self.admin
            )
            columns += expand_columns(
                self.schema,
                self.c,
                alias,
                shape.expand,
                visible or (lambda _c, _a: None),
                self.viewer,
            )
        return columns

    def compile(self, node: exp.Expression) -> Compiled:
        return self.p.compile(node)


def _id_eq(b: _Build, alias: str) -> exp.Expression:
    return exp.EQ(this=column("id", alias), expression=b.p.arg("id"))


def _returning(q: exp.Expression, columns: list[exp.Expression]) -> exp.Expression:
    q.set("returning", exp.Returning(expressions=columns))
    return q


def _cte(name: str, query: exp.Expression) -> exp.CTE:
    return exp.CTE(this=query, alias=exp.TableAlias(this=ident(name)))


def _checked(
    b: _Build, rule: exp.Expression | None, relations: list[exp.Expression] | None = None
) -> list[exp.Expression]:
    """The written row's checks as one extra output column `_ok`, when there is something to
    check: its relation targets first (`_relations_visible`: a missing target fails there as a
    hidden one does, so both answer alike whatever the rule says), then `baas.check_rule(rule)`.
    CASE fixes that order (the operands of AND may be evaluated in any order)."""
    checks = list(relations or [])
    if rule is not None:
        checks.append(exp.Anonymous(this="baas.check_rule", expressions=[group(rule)]))
    if not checks:
        return []
    node = checks[-1]
    for check in reversed(checks[:-1]):
        node = exp.Case(ifs=[exp.If(this=check, true=node)])
    return [named(node, "_ok", quoted=True)]


_TARGET = "RT"  # upper case: no field-derived alias has it
_LISTED = "RL"


def _relations_visible(
    b: _Build, names: tuple[str, ...], alias: str, updating: bool
) -> list[exp.Expression]:
    """For each relation field written (`names`), `baas.check_relation(ok, field)`: every record
    the row `alias` points to through it is one the caller may view (its collection's view
    rule), or (`updating`) was pointed to already. A target the caller may not view must answer
    as a missing one (400 relation_not_found), or a create could probe for records it cannot
    see, and link to them. Nothing to check for admins, or a target whose view rule is public
    (the foreign key, or the multi-relation trigger, checks that the target exists)."""
    visible = engine.related_condition(
        b.schema, "view", b.p, b.limits, auth_id=b.auth_id, admin=b.admin
    )
    if visible is None:
        return []
    checks: list[exp.Expression] = []
    for name in names:
        f = b.c.field(name)
        target = b.schema.collection(f.collection or "") if f and f.type == "relation" else None
        if f is None or target is None:
            continue
        condition = visible(target, _TARGET)
        if condition is None:
            continue
        ok = _targets_visible(b, f.name, f.multiple, target, condition, alias, updating)
        checks.append(
            exp.Anonymous(
                this="baas.check_relation", expressions=[group(ok), exp.Literal.string(f.name)]
            )
        )
    return checks


def _targets_visible(
    b: _Build,
    name: str,
    multiple: bool,
    target: Collection,
    condition: exp.Expression,
    alias: str,
    updating: bool,
) -> exp.Expression:
    def shown(target_id: exp.Expression) -> exp.Expression:
        found = exp.EQ(this=column("id", _TARGET), expression=target_id)
        query = exp.select(exp.Literal.number(1)).from_(aliased(target, _TARGET))
        return exp.Exists(this=query.where(all_of(found, condition.copy())))

    # Read in the outer statement, the table still holds the row as it was before the write.
    before = exp.Subquery(
        this=exp.select(column(name, "PRIOR"))
        .from_(aliased(b.c, "PRIOR"))
        .where(exp.EQ(this=column("id", "PRIOR"), expression=column("id", alias)))
    )
    written = column(name, alias)
    if not multiple:
        kept = [exp.NullSafeEQ(this=written, expression=before)] if updating else []
        unset = exp.Is(this=written.copy(), expression=exp.Null())
        return _any_of(unset, *kept, shown(written.copy()))
    listed = column("id", _LISTED)
    hidden: exp.Expression = exp.Not(this=shown(listed))
    if updating:
        # A scalar array, not ANY (subquery), which would compare with each row of it.
        ids = exp.Cast(this=before, to=exp.DataType.build("UUID[]", dialect="postgres"))
        had = exp.EQ(this=listed.copy(), expression=exp.Any(this=exp.Paren(this=ids)))
        hidden = all_of(exp.Not(this=exp.Coalesce(this=had, expressions=[exp.false()])), hidden)
    unnested = exp.Unnest(
        expressions=[written],
        alias=exp.TableAlias(this=ident(_LISTED), columns=[ident("id")]),
    )
    return exp.Not(
        this=exp.Exists(this=exp.select(exp.Literal.number(1)).from_(unnested).where(hidden))
    )


def _any_of(*conditions: exp.Expression) -> exp.Expression:
    result = group(conditions[0])
    for condition in conditions[1:]:
        result = exp.Or(this=result, expression=group(condition))
    return result


# -- reads ----------------------------------------------------------------------------------------


def get_one(
    cache: SchemaCache,
    limits: QueryLimits,
    c: Collection,
    shape: ReadShape,
    admin: bool,
    operation: str = "view",
) -> Compiled:
    """The record `id` if the caller may `operation` it (view; or update, for an empty PATCH)."""

    def build() -> Compiled:
        b = _Build(cache, limits, c, admin)
        rule = b.rule(operation, ALIAS, current_row=operation == "update")
        q = exp.select(*b.outputs(ALIAS, shape)).from_(aliased(c, ALIAS))
        return b.compile(q.where(all_of(_id_eq(b, ALIAS), rule)))

    return cache.lru(("get", c.name, shape, admin, operation), build)


def list_page(
    cache: SchemaCache, limits: QueryLimits, c: Collection, shape: ListShape, admin: bool
) -> Compiled:
    """One statement for a page: rows (LIMIT/OFFSET or keyset after a cursor) and the total.

    With a total, the count and the page are joined (`count LEFT JOIN LATERAL page`), so an
    empty page still carries the total.
    """

    def build() -> Compiled:
        b = _Build(cache, limits, c, admin)
        rule = b.rule("list", ALIAS)
        conditions = [rule]
        if shape.filter:
            conditions.append(only_where(rule, b.filter(shape.filter, ALIAS)))
        if shape.search:
            conditions.append(_search(b, ALIAS))
        where = all_of(*conditions)
        sort_values = [b.sort_value(k, ALIAS) for k in shape.sort]
        outputs = b.outputs(ALIAS, shape.read)
        names = shape.read.fields if shape.read.fields is not None else output_columns(c)
        for i, (key, value) in enumerate(zip(shape.sort, sort_values, strict=True)):
            if key.name not in names:  # the cursor needs every sort value of the last row
                outputs.append(named(value.copy(), f"{SORT}{i}", quoted=True))
        page_where = where
        if shape.cursor_nulls is not None:
            page_where = all_of(where, _keyset(b, shape.sort, sort_values, shape.cursor_nulls))
        page = exp.select(*outputs).from_(aliased(c, ALIAS)).where(page_where)
        page = page.order_by(*[_order(k, v) for k, v in zip(shape.sort, sort_values, strict=True)])
        page = page.limit(b.p.arg("limit")).offset(b.p.arg("offset"))
        if not shape.with_total:
            return b.compile(page)
        count = exp.select(named(exp.Count(this=exp.Star()), TOTAL, quoted=True))
        count = count.from_(aliased(c, ALIAS)).where(where.copy())
        query = (
            exp.select(
                exp.column(TOTAL, "c", quoted=True), exp.Column(this=exp.Star(), table=ident("p"))
            )
            .from_(named(exp.Subquery(this=count), "c", quoted=True))
            .join(
                exp.Lateral(this=exp.Subquery(this=page), alias=exp.TableAlias(this=ident("p"))),
                join_type="LEFT",
                on=exp.true(),
            )
        )
        return b.compile(query)

    return cache.lru(("list", c.name, shape, admin), build)


def _search(b: _Build, alias: str) -> exp.Expression:
    config = exp.Literal.string(b.c.search_language)
    text = exp.Cast(this=b.p.arg("search"), to=pg_type("text"))
    query = exp.Anonymous(this="websearch_to_tsquery", expressions=[config, text])
    return exp.MatchAgainst(this=query, expressions=[search_document(b.c, alias)])


def _order(k: SortKey, value: exp.Expression) -> exp.Ordered:
    # PostgreSQL's defaults (NULLS LAST ascending, NULLS FIRST descending), stated explicitly
    # because the keyset condition below depends on them.
    return exp.Ordered(this=value.copy(), desc=k.descending, nulls_first=k.descending)


def _keyset(
    b: _Build, sort: tuple[SortKey, ...], values: list[exp.Expression], nulls: tuple[bool, ...]
) -> exp.Expression:
    """Rows strictly after the cursor row in the (null-aware) sort order."""

    def cursor(i: int) -> exp.Expression:  # registered only where used: unused $n have no type
        return exp.Cast(this=b.p.arg(f"cursor.{i}"), to=pg_type(sort[i].kind))

    if len({k.descending for k in sort}) == 1 and not any(k.nullable for k in sort):
        left = exp.Tuple(expressions=[v.copy() for v in values])
        right = exp.Tuple(expressions=[cursor(i) for i in range(len(sort))])
        op = exp.LT if sort[0].descending else exp.GT
        return op(this=left, expression=right)
    branches: list[exp.Expression] = []
    for i, key in enumerate(sort):
        if not key.descending and nulls[i]:
            continue  # NULLS LAST: nothing sorts after a null but other nulls (tie -> next key)
        parts = [_same(values[j], cursor, j, nulls[j]) for j in range(i)]
        parts.append(_after(key, values[i], cursor, i, nulls[i]))
        branches.append(all_of(*parts))
    if not branches:
        return exp.false()
    result = group(branches[0])
    for branch in branches[1:]:
        result = exp.Or(this=result, expression=group(branch))
    return result


def _same(value: exp.Expression, cursor: object, i: int, is_null: bool) -> exp.Expression:
    if is_null:
        return exp.Is(this=value.copy(), expression=exp.Null())
    return exp.EQ(this=value.copy(), expression=cursor(i))  # type: ignore[operator]


def _after(
    key: SortKey, value: exp.Expression, cursor: object, i: int, is_null: bool
) -> exp.Expression:
    if key.descending:  # NULLS FIRST: after a null come the non-nulls; after v, smaller values
        if is_null:
            return exp.Not(this=exp.Paren(this=exp.Is(this=value.copy(), expression=exp.Null())))
        return exp.LT(this=value.copy(), expression=cursor(i))  # type: ignore[operator]
    greater = exp.GT(this=value.copy(), expression=cursor(i))  # type: ignore[operator]
    if not key.nullable:
        return greater
    return exp.Paren(
        this=exp.Or(this=greater, expression=exp.Is(this=value.copy(), expression=exp.Null()))
    )


# -- writes ---------------------------------------------------------------------------------------


def _insert(c: Collection, names: tuple[str, ...], p: Params) -> exp.Insert:
    if not names:
        return exp.Insert(this=table(c.name, TABLE_SCHEMA), default=True)
    return exp.Insert(
        this=exp.Schema(this=table(c.name, TABLE_SCHEMA), expressions=[ident(n) for n in names]),
        expression=exp.Values(
            expressions=[exp.Tuple(expressions=[p.arg(f"v.{n}") for n in names])]
        ),
    )


def insert(
    cache: SchemaCache, limits: QueryLimits, c: Collection, names: tuple[str, ...], admin: bool
) -> Compiled:
    """INSERT of the given columns (`id` too if the client chose it), checked by the create rule
    on the row as written: WITH rec AS (INSERT ... RETURNING *) SELECT ..., check_rule(...)."""

    def build() -> Compiled:
        b = _Build(cache, limits, c, admin)
        rule = b.rule("create", ALIAS)
        relations = _relations_visible(b, names, ALIAS, updating=False)
        ins = _insert(c, names, b.p)
        if rule is None and not relations:
            return b.compile(_returning(ins, b.outputs(None, ReadShape())))
        _returning(ins, [exp.Star()])
        checks = _checked(b, rule, relations)
        q = exp.select(*b.outputs(ALIAS, ReadShape()), *checks).from_(ALIAS)
        q.set("with_", exp.With(expressions=[_cte(ALIAS, ins)]))
        return b.compile(q)

    return cache.lru(("insert", c.name, names, admin), build)


def update(
    cache: SchemaCache, limits: QueryLimits, c: Collection, names: tuple[str, ...], admin: bool
) -> Compiled:
    """UPDATE of record `id` where the update rule holds for the current row; the new row must
    satisfy it too (check_rule), so nobody can move a record out of their own reach."""

    def build() -> Compiled:
        b = _Build(cache, limits, c, admin)
        before = b.rule("update", "cur", current_row=True)
        sets = [exp.EQ(this=column(n), expression=b.p.arg(f"v.{n}")) for n in names]
        upd = exp.Update(
            this=aliased(c, "cur"),
            expressions=sets,
            where=exp.Where(this=all_of(_id_eq(b, "cur"), before)),
        )
        relations = _relations_visible(b, names, ALIAS, updating=True)
        if before is None and not relations:
            return b.compile(_returning(upd, b.outputs("cur", ReadShape())))
        _returning(upd, [exp.Column(this=exp.Star(), table=ident("cur"))])
        after = b.rule("update", ALIAS)
        checks = _checked(b, after, relations)
        q = exp.select(*b.outputs(ALIAS, ReadShape()), *checks).from_(ALIAS)
        q.set("with_", exp.With(expressions=[_cte(ALIAS, upd)]))
        return b.compile(q)

    return cache.lru(("update", c.name, names, admin), build)


def upsert(
    cache: SchemaCache, limits: QueryLimits, c: Collection, names: tuple[str, ...], admin: bool
) -> Compiled:
    """Update the given columns of record `id` (update rule), or insert it if absent (create
    rule); says which happened. One statement: UPDATE, then INSERT ... WHERE the id is absent.

    A plain INSERT ... ON CONFLICT would check NOT NULL on the proposed row before finding the
    conflict, so a partial body could never update a record with required fields. The INSERT
    still says ON CONFLICT DO NOTHING: when a concurrent upsert inserts the id first, this
    statement returns no row and the caller runs it again.
    """

    def build() -> Compiled:
        b = _Build(cache, limits, c, admin)
        before = b.rule("update", "cur", current_row=True)
        if names:
            sets = [exp.EQ(this=column(n), expression=b.p.arg(f"v.{n}")) for n in names]
            existing: exp.Expression = _returning(
                exp.Update(
                    this=aliased(c, "cur"),
                    expressions=sets,
                    where=exp.Where(this=all_of(_id_eq(b, "cur"), before)),
                ),
                [exp.Column(this=exp.Star(), table=ident("cur"))],
            )
        else:
            existing = (
                exp.select(exp.Star())
                .from_(aliased(c, "cur"))
                .where(all_of(_id_eq(b, "cur"), before))
            )
        present = (
            exp.select(exp.Literal.number(1))
            .from_(table(c.name, TABLE_SCHEMA))
            .where(exp.EQ(this=column("id"), expression=b.p.arg("id")))
        )
        values = exp.select(b.p.arg("id"), *[b.p.arg(f"v.{n}") for n in names]).where(
            exp.Not(this=exp.Exists(this=present))
        )
        insert_new = exp.Insert(
            this=exp.Schema(
                this=table(c.name, TABLE_SCHEMA), expressions=[ident(n) for n in ("id", *names)]
            ),
            expression=values,
            conflict=exp.OnConflict(action=exp.var("DO NOTHING"), conflict_keys=[ident("id")]),
        )
        _returning(insert_new, [exp.Star()])
        # Both branches of the UNION end with a rule check (TRUE where the rule is public).
        checks = [
            (b.rule("update", "u"), _relations_visible(b, names, "u", updating=True)),
            (b.rule("create", "i"), _relations_visible(b, names, "i", updating=False)),
        ]
        okays = [
            _checked(b, rule, relations) or [named(exp.true(), "_ok", quoted=True)]
            for rule, relations in checks
        ]
        updated = exp.select(
            *b.outputs("u", ReadShape()), named(exp.false(), INSERTED, quoted=True), *okays[0]
        ).from_("u")
        inserted = exp.select(*b.outputs("i", ReadShape()), exp.true(), *okays[1]).from_("i")
        query = exp.union(updated, inserted, distinct=False)
        query.set("with_", exp.With(expressions=[_cte("u", existing), _cte("i", insert_new)]))
        return b.compile(query)

    return cache.lru(("upsert", c.name, names, admin), build)


def delete(cache: SchemaCache, limits: QueryLimits, c: Collection, admin: bool) -> Compiled:
    def build() -> Compiled:
        b = _Build(cache, limits, c, admin)
        q = exp.Delete(
            this=aliased(c, ALIAS),
            where=exp.Where(this=all_of(_id_eq(b, ALIAS), b.rule("delete", ALIAS))),
        )
        return b.compile(_returning(q, [column("id", ALIAS)]))

    return cache.lru(("delete", c.name, admin), build)
