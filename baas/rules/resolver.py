"""The record resolver: what names mean in a filter or rule on a collection.

`title` is a column; `author.name` goes through a relation (an EXISTS over the related rows, in
which the related collection's own condition can be enforced); `meta.a.b` is a path into a json
field; `auth.id` is the caller; `auth.<field>` reads the caller's users record; `body.<field>` is
an incoming value (create and update rules only). Hidden fields exist only for rules; private
fields of users (`verified`, ...) for rules, admins and `auth.<field>` (the caller's own), so no
client filter or sort can probe other accounts through them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlglot import exp

from baas.query import Hop, Kind, NameProblem, ParamSink, QueryLimits, Resolved
from baas.query.compile import PG_TYPES, group
from baas.schema.auth_collection import AUTH_COLLECTION, SECRET_FIELDS
from baas.schema.models import TABLE_SCHEMA, Collection, Field, Schema

SYSTEM_KINDS: dict[str, Kind] = {"id": "uuid", "created": "datetime", "updated": "datetime"}
_FIELD_KINDS: dict[str, str] = {
    "text": "text",
    "email": "text",
    "url": "text",
    "select": "text",
    "file": "text",
    "integer": "integer",
    "number": "number",
    "bool": "bool",
    "datetime": "datetime",
    "date": "date",
    "json": "json",
    "relation": "uuid",
}
_MAX_ALIAS = 60


class Binder(ParamSink, Protocol):
    def arg(self, name: str) -> exp.Expression:
        """The parameter for a value supplied per execution (auth.id, body.title, ...)."""


Related = Callable[[Collection, str], exp.Expression | None]


@dataclass(frozen=True)
class Context:
    """What names may reach in one statement."""

    schema: Schema
    binder: Binder
    limits: QueryLimits
    auth_id: exp.Expression  # the caller's id: a parameter, or a column for batch checks
    body: Collection | None = None  # body.* names incoming values of this collection
    related: Related | None = None  # condition on rows reached through a relation path
    hidden: bool = False  # may name hidden fields (rules may, client filters may not)
    private: bool = False  # may name private fields of others' accounts (rules and admins may)


def field_kind(f: Field) -> Kind:
    kind = _FIELD_KINDS[f.type]
    return f"{kind}[]" if f.multiple else kind  # type: ignore[return-value]


def pg_type(kind: str) -> exp.DataType:
    base = PG_TYPES[kind[:-2]] + "[]" if kind.endswith("[]") else PG_TYPES[kind]
    return exp.DataType.build(base, dialect="postgres")


def column(name: str, alias: str) -> exp.Column:
    return exp.Column(
        this=exp.to_identifier(name, quoted=True), table=exp.to_identifier(alias, quoted=True)
    )


def aliased(c: Collection, alias: str) -> exp.Table:
    return exp.Table(
        this=exp.to_identifier(c.name, quoted=True),
        db=exp.to_identifier(TABLE_SCHEMA, quoted=True),
        alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
    )


def named(node: exp.Expression, name: str, quoted: bool = True) -> exp.Expression:
    """`node AS "name"`."""
    return exp.Alias(this=node, alias=exp.to_identifier(name, quoted=quoted))


def all_of(*conditions: exp.Expression | None) -> exp.Expression:
    """AND of the conditions, each grouped (built trees carry no precedence of their own)."""
    present = [group(c) for c in conditions if c is not None]
    if not present:
        return exp.true()
    result = present[0]
    for condition in present[1:]:
        result = exp.And(this=result, expression=condition)
    return result


def only_where(guard: exp.Expression | None, condition: exp.Expression) -> exp.Expression:
    """`condition`, evaluated only on rows `guard` admits.

    PostgreSQL evaluates the parts of a WHERE in any order (cheapest first), so a client's
    condition could run on rows a rule hides, and an error it raises there (a division by zero,
    an overflow) would tell the client something about those rows. CASE fixes the order.
    """
    if guard is None or not may_raise(condition):
        return condition  # plain comparisons cannot raise, and stay usable as index conditions
    return exp.Case(
        ifs=[exp.If(this=group(guard.copy()), true=group(condition))], default=exp.false()
    )


def may_raise(condition: exp.Expression) -> bool:
    """Whether evaluating `condition` on some row could raise an error: arithmetic (division by
    zero, overflow), abs() (of the smallest bigint) or LIKE with a pattern taken from a column
    (a trailing escape character). Comparisons, IS, IN, functions on text and parameters cannot;
    nor can EXISTS over related rows, which guard themselves."""
    for node in condition.walk(prune=lambda n: isinstance(n, exp.Exists)):
        if isinstance(node, _RAISING):
            return True
        if isinstance(node, (exp.Like, exp.ILike)) and not _is_parameter(node.expression):
            return True
    return False


_RAISING = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Neg, exp.Abs, exp.Mod)


def _is_parameter(node: exp.Expression) -> bool:
    while isinstance(node, (exp.Cast, exp.Paren)):
        node = node.this
    return isinstance(node, exp.Parameter)


def child_alias(outer: str, name: str) -> str:
    alias = f"{outer}_{name}"
    if len(alias.encode()) <= _MAX_ALIAS:
        return alias
    return "a" + hashlib.sha256(alias.encode()).hexdigest()[:16]


class RecordResolver:
    """Resolves names against `collection`, whose row in the statement is called `alias`."""

    def __init__(self, context: Context, collection: Collection, alias: str) -> None:
        self.context = context
        self.collection = collection
        self.alias = alias

    def resolve(self, path: tuple[str, ...]) -> Resolved:
        head, rest = path[0], path[1:]
        if head == "auth" and rest:  # a field may be called auth or body: alone it is the field
            return self._auth(rest)
        if head == "body" and rest:
            return self._body(rest)
        return self._record(self.collection, self.alias, path, (), "")

    def _record(
        self, c: Collection, alias: str, path: tuple[str, ...], hops: tuple[Hop, ...], prefix: str
    ) -> Resolved:
        name, rest = path[0], path[1:]
        if name in SYSTEM_KINDS:
            if rest:
                raise NameProblem(f"{prefix}{name} has no fields")
            return Resolved(column(name, alias), SYSTEM_KINDS[name], hops)
        f = _readable(c, name, self.context.hidden)
        if f is None:
            raise NameProblem(f"{c.name} has no field {name!r}")
        if f.private and not (self.context.hidden or self.context.private):
            raise NameProblem(
                f"{prefix}{name} is shown only to the account itself: filters and sorts "
                "cannot use it"
            )
        if not rest:
            return Resolved(column(name, alias), field_kind(f), hops)
        if f.type == "json":
            return self._json(f, alias, rest, hops)
        if f.type != "relation":
            raise NameProblem(f"{prefix}{name} is a {f.type} field: it has no {rest[0]!r}")
        limit = self.context.limits.max_relation_depth
        if len(hops) >= limit:
            raise NameProblem(f"a path may go through at most {limit} relations")
        target = self.context.schema.collection(f.collection or "")
        if target is None:
            raise NameProblem(f"{prefix}{name} points to a missing collection")
        inner = child_alias(alias, name)
        key = prefix + name
        hop = Hop(
            key,
            wrap=lambda predicate: self._exists(target, inner, alias, f, predicate),
            scalar=None
            if f.multiple
            else (lambda value: self._scalar(target, inner, alias, f, value)),
        )
        return self._record(target, inner, rest, (*hops, hop), key + ".")

    def _json(self, f: Field, alias: str, keys: tuple[str, ...], hops: tuple[Hop, ...]) -> Resolved:
        if len(keys) > self.context.limits.max_json_path:
            raise NameProblem(
                f"a json path may have at most {self.context.limits.max_json_path} keys"
            )
        path = exp.Cast(this=self.context.binder.const(list(keys)), to=pg_type("text[]"))
        return Resolved(exp.JSONBExtract(this=column(f.name, alias), expression=path), "json", hops)

    def _link(self, inner: str, outer: str, f: Field) -> exp.Expression:
        target_id = column("id", inner)
        if f.multiple:
            return exp.EQ(
                this=target_id, expression=exp.Any(this=exp.Paren(this=column(f.name, outer)))
            )
        return exp.EQ(this=target_id, expression=column(f.name, outer))

    def _exists(
        self, target: Collection, inner: str, outer: str, f: Field, predicate: exp.Expression
    ) -> exp.Expression:
        related = self.context.related(target, inner) if self.context.related else None
        where = all_of(self._link(inner, outer, f), related, only_where(related, predicate))
        query = exp.select(exp.Literal.number(1)).from_(aliased(target, inner)).where(where)
        return exp.Exists(this=query)

    def _scalar(
        self, target: Collection, inner: str, outer: str, f: Field, value: exp.Expression
    ) -> exp.Expression:
        related = self.context.related(target, inner) if self.context.related else None
        where = all_of(self._link(inner, outer, f), related)
        return exp.Subquery(this=exp.select(value).from_(aliased(target, inner)).where(where))

    def _auth(self, rest: tuple[str, ...]) -> Resolved:
        if rest == ("id",):
            return Resolved(self.context.auth_id, "uuid")
        if len(rest) != 1:
            raise NameProblem("auth has no such path: use auth.id or auth.<field>")
        users = self.context.schema.collection(AUTH_COLLECTION)
        f = _readable(users, rest[0], self.context.hidden) if users else None
        if users is None or f is None:
            raise NameProblem(f"auth has no field {rest[0]!r}")
        me = exp.select(column(f.name, "auth_user")).from_(aliased(users, "auth_user"))
        me = me.where(exp.EQ(this=column("id", "auth_user"), expression=self.context.auth_id))
        return Resolved(exp.Subquery(this=me), field_kind(f))

    def _body(self, rest: tuple[str, ...]) -> Resolved:
        c = self.context.body
        if c is None:
            raise NameProblem("body.* is only for create and update rules")
        if len(rest) != 1:
            raise NameProblem("body.<field> names one incoming field")
        name = rest[0]
        f = c.field(name)
        kind: Kind
        if name == "id":
            kind = "uuid"
        elif f is None or (c.name == AUTH_COLLECTION and name in SECRET_FIELDS):
            raise NameProblem(f"{c.name} has no field {name!r}")
        else:
            kind = field_kind(f)
        return Resolved(
            exp.Cast(this=self.context.binder.arg(f"body.{name}"), to=pg_type(kind)), kind
        )


def _readable(c: Collection, name: str, hidden: bool) -> Field | None:
    """The field a filter (or, with `hidden`, a rule) may name; never a password hash."""
    f = c.field(name)
    if f is None or (f.hidden and not hidden):
        return None
    if c.name == AUTH_COLLECTION and name in SECRET_FIELDS:
        return None
    return f
