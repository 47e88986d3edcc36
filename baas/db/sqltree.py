"""SQL as trees: identifier quoting, parameters, literals and SQL templates.

Records, DDL and push put schema names into SQL through `ident`/`table`/`column`, only with
names taken from the validated schema. Not yet everywhere: the rule resolver
(`rules/resolver.py`) makes its nodes with sqlglot's `to_identifier`, and `auth/users.py` writes
its users-table SQL as text. Values are `$n` parameters (`param`) or, where PostgreSQL takes no
parameters (DDL), literal nodes that sqlglot renders escaped. `template` parses a constant SQL
text whose placeholders (`__name`) are then swapped for nodes: user text is never parsed as SQL
here.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlglot
from sqlglot import exp

DIALECT = "postgres"
_PREFIX = "__"


def ident(name: str) -> exp.Identifier:
    """A quoted identifier (the one place names become SQL)."""
    return exp.Identifier(this=name, quoted=True)


def table(name: str, schema: str) -> exp.Table:
    return exp.Table(this=ident(name), db=ident(schema))


def column(name: str, qualifier: str | None = None) -> exp.Column:
    return exp.Column(this=ident(name), table=ident(qualifier) if qualifier else None)


def param(n: int) -> exp.Parameter:
    """The asyncpg parameter `$n` (1-based)."""
    return exp.Parameter(this=exp.Literal.number(n))


def literal(value: Any) -> exp.Expression:
    """A literal node for a JSON-like value (DDL defaults and checks only)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(repr(value))
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def cast(node: exp.Expression, type_sql: str) -> exp.Cast:
    return exp.Cast(this=node, to=exp.DataType.build(type_sql, dialect=DIALECT))


def render(node: exp.Expression) -> str:
    return node.sql(dialect=DIALECT)


@functools.lru_cache(maxsize=256)
def _parsed(sql: str) -> exp.Expression:
    tree = sqlglot.parse_one(sql, read=DIALECT)
    assert isinstance(tree, exp.Expression)
    return tree


def template(sql: str, **nodes: exp.Expression | str) -> exp.Expression:
    """Parse constant `sql` once and replace each `__key` placeholder with `nodes[key]`.

    A str value is a name and becomes a quoted identifier; a node replaces the whole
    column/identifier the placeholder stood for.
    """
    tree = _parsed(sql).copy()

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table:
            key = _key(node.this)
            if key is not None and not isinstance(nodes[key], str):
                return nodes[key]  # type: ignore[return-value]
        if isinstance(node, exp.Identifier):
            key = _key(node)
            if key is not None:
                value = nodes[key]
                if isinstance(value, str):
                    return ident(value)
                return value
        return node

    return tree.transform(swap, copy=False)


def _key(node: Any) -> str | None:
    if isinstance(node, exp.Identifier):
        name = str(node.this)
        if name.startswith(_PREFIX):
            return name[len(_PREFIX) :]
    return None


class Params:
    """Collects the `$n` parameters of a statement as it is built.

    A parameter is either a constant (known while building, e.g. a filter literal) or a named
    argument supplied per execution (a record id, a page size, `auth.id`). The statement text is
    then cached per shape and re-bound cheaply with `Compiled.bind`.
    """

    def __init__(self) -> None:
        self.sources: list[tuple[bool, Any]] = []  # (is_constant, value or argument name)
        self._args: dict[str, int] = {}

    def const(self, value: Any) -> exp.Parameter:
        self.sources.append((True, value))
        return param(len(self.sources))

    def arg(self, name: str) -> exp.Parameter:
        """The parameter for argument `name` (the same `$n` each time it is used)."""
        if name not in self._args:
            self.sources.append((False, name))
            self._args[name] = len(self.sources)
        return param(self._args[name])

    def compile(self, node: exp.Expression) -> Compiled:
        """Render `node`, numbering only the parameters it actually uses ($1, $2, ... in order
        of first use): a parameter registered for a branch that was later dropped never
        reaches PostgreSQL (which would refuse an argument it cannot type)."""
        renumbered: dict[int, int] = {}
        found = [
            (parameter, int(parameter.this.this)) for parameter in node.find_all(exp.Parameter)
        ]
        for parameter, old in found:
            new = renumbered.setdefault(old, len(renumbered) + 1)
            parameter.set("this", exp.Literal.number(new))
        sources = [
            self.sources[old - 1] for old, _ in sorted(renumbered.items(), key=lambda i: i[1])
        ]
        return Compiled(render(node), tuple(sources))


class Compiled:
    """SQL text plus where each `$n` value comes from."""

    __slots__ = ("sources", "sql")

    def __init__(self, sql: str, sources: tuple[tuple[bool, Any], ...]) -> None:
        self.sql = sql
        self.sources = sources

    def bind(self, args: dict[str, Any]) -> list[Any]:
        return [value if constant else args[value] for constant, value in self.sources]

    def __repr__(self) -> str:
        return f"Compiled({self.sql!r}, {self.sources!r})"
