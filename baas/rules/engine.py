"""The rule engine: the SQL condition an identity needs for an operation on a collection.

One engine for every door: REST (list, view, create, update, delete), client filters (which may
never widen a rule, and reach related records only through those records' own list rule), expand
(each embedded record under its own view rule), realtime (`realtime/access.py`), file downloads
(through `records/visibility.py`) and push (`push/access.py`, `push/triggers.py`).
A rule is None (locked: service keys and superusers only), "" (anyone) or an expression.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlglot import exp

from baas.query import FilterError, QueryLimits, compile_filter, compile_value, parse_filter
from baas.query.compile import Resolved
from baas.rules.resolver import Binder, Context, RecordResolver
from baas.schema.auth_collection import AUTH_COLLECTION
from baas.schema.models import RULE_OPERATIONS, Collection, Schema
from baas.schema.push_triggers import RecipientPathError, recipient_path

VERBS = {"list": "list", "view": "view", "create": "create", "update": "update", "delete": "delete"}
WRITES = ("create", "update")


class Locked(Exception):
    """The operation's rule is locked: only service keys and superusers may do it."""

    def __init__(self, collection: Collection, operation: str) -> None:
        super().__init__(
            f"only service keys and superusers may {VERBS[operation]} {collection.name} records"
        )
        self.collection = collection
        self.operation = operation


class RuleError(Exception):
    """A stored rule does not compile against the live schema (it was checked when applied)."""


@functools.lru_cache(maxsize=512)
def _parsed(text: str, limits: QueryLimits) -> exp.Expression:
    return parse_filter(text, limits)  # the compiler only reads the tree: sharing it is safe


def rule_condition(
    schema: Schema,
    c: Collection,
    operation: str,
    alias: str,
    binder: Binder,
    limits: QueryLimits,
    *,
    auth_id: exp.Expression,
    admin: bool,
    current_row: bool = False,
) -> exp.Expression | None:
    """The condition `operation` on `c` needs, or None when unrestricted; Locked when locked.

    `current_row` (updates): the rule as it applies to the row before the update, i.e. without
    its top-level `AND` terms about `body.*`: those judge what is being written, and a refusal
    there is a 403 on the new row, not a 404 on the current one. (A rule made only of body
    terms stays whole, so a record the caller cannot see still answers 404.)
    """
    if admin:
        return None
    rule = c.rules.for_operation(operation)
    if rule is None:
        raise Locked(c, operation)
    if not rule.strip():
        return None
    tree = _parsed(rule, limits)
    if current_row:
        tree = _without_body_terms(tree)
    context = Context(
        schema, binder, limits, auth_id, body=c if operation in WRITES else None, hidden=True
    )
    try:
        return compile_filter(tree, RecordResolver(context, c, alias), binder, limits)
    except FilterError as exc:
        raise RuleError(f"the {operation} rule of {c.name} no longer compiles: {exc}") from None


def _without_body_terms(tree: exp.Expression) -> exp.Expression:
    terms = _conjuncts(tree)
    kept = [t.copy() for t in terms if not _mentions_body(t)]  # copies: the tree is cached
    if not kept or len(kept) == len(terms):
        return tree
    result = kept[0]
    for term in kept[1:]:
        result = exp.And(this=result, expression=term)
    return result


def _conjuncts(tree: exp.Expression) -> list[exp.Expression]:
    while isinstance(tree, exp.Paren):
        tree = tree.this
    if isinstance(tree, exp.And):
        return [*_conjuncts(tree.this), *_conjuncts(tree.expression)]
    return [tree]


def _mentions_body(tree: exp.Expression) -> bool:
    return any(
        len(column.parts) > 1 and column.parts[0].name == "body"
        for column in tree.find_all(exp.Column)
    )


def related_condition(
    schema: Schema,
    operation: str,
    binder: Binder,
    limits: QueryLimits,
    *,
    auth_id: exp.Expression,
    admin: bool,
) -> Any:
    """For rows reached through a relation (client filters, expand): their own `operation`
    rule; a locked one hides every row."""
    if admin:
        return None

    def condition(target: Collection, alias: str) -> exp.Expression | None:
        try:
            return rule_condition(
                schema, target, operation, alias, binder, limits, auth_id=auth_id, admin=False
            )
        except Locked:
            return exp.false()

    return condition


def _client_context(
    schema: Schema, binder: Binder, limits: QueryLimits, auth_id: exp.Expression, admin: bool
) -> Context:
    """Names as a client may use them: no hidden fields, no private fields (but for admins), no
    body.*, related rows only through their collection's list rule."""
    related = related_condition(schema, "list", binder, limits, auth_id=auth_id, admin=admin)
    return Context(schema, binder, limits, auth_id, related=related, private=admin)


def filter_condition(
    schema: Schema,
    c: Collection,
    text: str,
    alias: str,
    binder: Binder,
    limits: QueryLimits,
    *,
    auth_id: exp.Expression,
    admin: bool,
) -> exp.Expression:
    """A client filter: no hidden fields, no body.*, related rows only as their list rule allows.
    Raises FilterError (the client's mistake, with its position)."""
    context = _client_context(schema, binder, limits, auth_id, admin)
    return compile_filter(
        parse_filter(text, limits), RecordResolver(context, c, alias), binder, limits
    )


def sort_value(
    schema: Schema,
    c: Collection,
    path: tuple[str, ...],
    alias: str,
    binder: Binder,
    limits: QueryLimits,
    *,
    auth_id: exp.Expression,
    admin: bool,
) -> Resolved:
    """A client sort key (a field, or a path through single relations): its value expression.
    Raises FilterError."""
    context = _client_context(schema, binder, limits, auth_id, admin)
    resolved = RecordResolver(context, c, alias).resolve(path)
    node = resolved.node
    for hop in reversed(resolved.hops):
        if hop.scalar is None:
            raise FilterError(f"cannot sort by {'.'.join(path)}: {hop.key} holds several records")
        node = hop.scalar(node)
    return Resolved(node, resolved.kind)


def check_rules(schema: Schema, limits: QueryLimits) -> list[str]:
    """Every rule that does not compile against `schema`, as problems with their paths."""
    problems = []
    for c in schema.collections:
        for operation in RULE_OPERATIONS:
            rule = c.rules.for_operation(operation)
            if not rule or not rule.strip():
                continue
            binder = _Throwaway()
            context = Context(
                schema,
                binder,
                limits,
                binder.arg("auth.id"),
                body=c if operation in WRITES else None,
                hidden=True,
            )
            try:
                tree = parse_filter(rule, limits)
                compile_filter(tree, RecordResolver(context, c, "rec"), binder, limits)
            except FilterError as exc:
                problems.append(f"collections.{c.name}.rules.{operation}: {exc}")
        for i, trigger in enumerate(c.push):
            try:
                recipient_path(schema, c, trigger.to, limits.max_relation_depth, AUTH_COLLECTION)
            except RecipientPathError as exc:
                problems.append(f"collections.{c.name}.push[{i}].to: {exc}")
            if trigger.filter is None:
                continue
            binder = _Throwaway()
            try:
                filter_condition(
                    schema, c, trigger.filter, "rec", binder, limits, auth_id=exp.Null(), admin=True
                )
            except FilterError as exc:
                problems.append(f"collections.{c.name}.push[{i}].filter: {exc}")
    return problems


class _Throwaway:
    """Parameters for a compile whose SQL is thrown away (checking rules)."""

    def const(self, value: Any) -> exp.Expression:
        return exp.Parameter(this=exp.Literal.number(1))

    def arg(self, name: str) -> exp.Expression:
        return exp.Parameter(this=exp.Literal.number(1))


__all__ = [
    "Locked",
    "RuleError",
    "check_rules",
    "compile_value",
    "filter_condition",
    "related_condition",
    "rule_condition",
    "sort_value",
]
