"""Parsed filter -> a NEW sqlglot tree, built node by node from an allowlist.

The parsed user tree is never rendered: every node is checked against the allowed kinds of node
and rebuilt, names come from the `Resolver`, and every literal becomes a typed parameter (`$n`,
cast to the type of what it is compared with) through the `ParamSink`. Relation paths bring
`Hop`s: the comparison they appear in is wrapped in each hop's scope (an EXISTS over the related
rows), so a multi-valued relation matches when any related record does.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

from sqlglot import exp

from baas.query.errors import CALLED, FilterError, NameProblem, position_at, position_of
from baas.query.limits import QueryLimits

Kind = Literal[
    "text",
    "integer",
    "number",
    "bool",
    "datetime",
    "date",
    "uuid",
    "json",
    "interval",
    "text[]",
    "uuid[]",
    "null",
    "unknown",
]
PG_TYPES: dict[str, str] = {
    "text": "TEXT",
    "integer": "BIGINT",
    "number": "DOUBLE PRECISION",
    "bool": "BOOLEAN",
    "datetime": "TIMESTAMPTZ",
    "date": "DATE",
    "uuid": "UUID",
    "json": "JSONB",
    "text[]": "TEXT[]",
    "uuid[]": "UUID[]",
}
_NUMERIC = {"integer", "number"}
_TEMPORAL = {"datetime", "date"}
_BIGINT = 2**63
_INTERVAL = re.compile(
    r"\s*(\d{1,9}(\.\d{1,6})?\s*(microsecond|millisecond|second|minute|hour|day|week|month|year)s?\s*)+",
    re.IGNORECASE,
)
_INTERVAL_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)", re.IGNORECASE)
_YEARS_PER = {
    "microsecond": 1 / 31_557_600_000_000,
    "millisecond": 1 / 31_557_600_000,
    "second": 1 / 31_557_600,
    "minute": 1 / 525_960,
    "hour": 1 / 8_766,
    "day": 1 / 365.25,
    "week": 7 / 365.25,
    "month": 1 / 12,
    "year": 1,
}
MAX_INTERVAL_YEARS = 4000  # dates stay within PostgreSQL's range (4713 BC onwards)
_UUID = re.compile(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}")
_COMPARISONS: tuple[type[exp.Expression], ...] = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
)
_ORDERED = (exp.GT, exp.GTE, exp.LT, exp.LTE)


@dataclass(frozen=True)
class Hop:
    """A step into related rows: `wrap` puts a predicate inside that scope (e.g. an EXISTS);
    `scalar` turns a value there into one value here (None when there can be several rows)."""

    key: str
    wrap: Callable[[exp.Expression], exp.Expression]
    scalar: Callable[[exp.Expression], exp.Expression] | None = None


@dataclass(frozen=True)
class Resolved:
    node: exp.Expression
    kind: Kind
    hops: tuple[Hop, ...] = ()


class Resolver(Protocol):
    def resolve(self, path: tuple[str, ...]) -> Resolved:
        """The SQL for a dotted name; raise NameProblem if it is unknown or not allowed."""


class ParamSink(Protocol):
    def const(self, value: Any) -> exp.Expression:
        """A new bound parameter holding `value`."""


def compile_filter(
    tree: exp.Expression, resolver: Resolver, params: ParamSink, limits: QueryLimits
) -> exp.Expression:
    """A parsed boolean expression -> a new, safe condition."""
    compiler = _Compiler(resolver, params, limits, tree.meta.get("source", ""))
    try:
        return compiler.predicate(tree)
    except FilterError as exc:
        raise compiler.located(exc) from None


def compile_value(
    tree: exp.Expression, resolver: Resolver, params: ParamSink, limits: QueryLimits
) -> Resolved:
    """A parsed value expression (e.g. a sort key) -> its SQL, kind and hops."""
    compiler = _Compiler(resolver, params, limits, tree.meta.get("source", ""))
    try:
        value = compiler.value(tree)
    except FilterError as exc:
        raise compiler.located(exc) from None
    if value.node is None:
        raise FilterError("a constant is not allowed here", position_of(tree))
    return Resolved(value.node, value.kind, value.hops)


_NO_LITERAL = object()


@dataclass
class _Value:
    node: exp.Expression | None  # None: a literal whose type comes from what it meets
    kind: Kind
    hops: tuple[Hop, ...] = ()
    literal: Any = _NO_LITERAL
    position: tuple[int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_literal(self) -> bool:
        return self.literal is not _NO_LITERAL


class _Compiler:
    def __init__(
        self, resolver: Resolver, params: ParamSink, limits: QueryLimits, source: str = ""
    ) -> None:
        self.resolver = resolver
        self.params = params
        self.limits = limits
        self.source = source
        self.at: tuple[int, int] | None = None  # the last position seen, for errors without one

    def located(self, exc: FilterError) -> FilterError:
        """`exc` with a position: its own, or the nearest one the compiler saw before it."""
        if exc.position is not None:
            return exc
        return FilterError(exc.reason, self.at or (1, 1))

    # -- boolean context ---------------------------------------------------------------------

    def predicate(self, node: exp.Expression) -> exp.Expression:
        # sqlglot renders a built tree as is, without precedence parentheses (Not(And(a, b))
        # would read NOT a AND b), so every operand of AND, OR and NOT is grouped explicitly.
        if isinstance(node, (exp.And, exp.Or)):
            left, right = self.predicate(node.this), self.predicate(node.expression)
            return type(node)(this=group(left), expression=group(right))
        if isinstance(node, exp.Not):
            return exp.Not(this=group(self.predicate(node.this)))
        if isinstance(node, exp.Paren):
            return self.predicate(node.this)
        self.at = position_of(node) or self.at
        built, values = self._leaf(node)
        if node.args.get("negate"):  # x IS NOT NULL, x NOT LIKE y, x NOT BETWEEN ...
            built = exp.Not(this=group(built))
        return _wrap(built, values)

    def _leaf(self, node: exp.Expression) -> tuple[exp.Expression, list[_Value]]:
        if isinstance(node, _COMPARISONS):
            return self._comparison(node)
        if isinstance(node, exp.Is):
            return self._is(node)
        if isinstance(node, (exp.Like, exp.ILike)):
            return self._like(node)
        if isinstance(node, exp.Between):
            return self._between(node)
        if isinstance(node, exp.In):
            return self._in(node)
        if isinstance(node, (exp.ArrayContainsAll, exp.ArrayOverlaps)):
            return self._array_operator(node)
        if _function_name(node) in ("contains", "contains_any"):
            return self._contains(node)
        value = self.value(node)
        if value.kind == "null":
            raise FilterError(
                "NULL is not a condition: test a field with IS NULL", position_of(node)
            )
        if value.kind != "bool":
            path = _path(node)
            what = ".".join(path) if path else f"'{_written(node, self.source) or node.sql()}'"
            raise FilterError(
                f"{what} is {_a(value.kind)}, not a condition: compare it "
                "(e.g. with =, IN or IS NULL)",
                position_of(node),
            )
        return self._bind(value, "bool"), [value]

    def _comparison(self, node: exp.Expression) -> tuple[exp.Expression, list[_Value]]:
        right_node = node.expression
        if isinstance(right_node, exp.Any) and isinstance(node, exp.EQ):
            return self._equals_any(node)
        left, right = self.value(node.this), self.value(right_node)
        if isinstance(node, (exp.NullSafeEQ, exp.NullSafeNEQ)) and "null" in (
            left.kind,
            right.kind,
        ):
            subject = right if left.kind == "null" else left  # IS [NOT] DISTINCT FROM NULL
            operand = self._bind(subject, subject.kind if subject.node is not None else "text")
            is_null = exp.Is(this=operand, expression=exp.Null())
            if isinstance(node, exp.NullSafeEQ):
                return is_null, [subject]
            return exp.Not(this=group(is_null)), [subject]
        if left.kind == "null" or right.kind == "null":
            raise FilterError(
                "comparing with NULL is never true: use IS NULL or IS NOT NULL", position_of(node)
            )
        kind = _common_kind(left, right, node)
        if isinstance(node, _ORDERED) and kind.endswith("[]"):
            raise FilterError("lists cannot be ordered: use contains()", position_of(node))
        built = type(node)(this=self._bind(left, kind), expression=self._bind(right, kind))
        return built, [left, right]

    def _equals_any(self, node: exp.Expression) -> tuple[exp.Expression, list[_Value]]:
        array = self.value(_unparen(node.expression.this))
        if not array.kind.endswith("[]"):
            raise FilterError("ANY(...) takes a list field", position_of(node.expression))
        element = self.value(node.this)
        kind = _element(array.kind)
        if element.node is not None and element.kind != kind:
            raise FilterError(
                f"{_a(element.kind)} cannot be in a list of {kind} values", position_of(node)
            )
        built = exp.EQ(
            this=self._bind(element, kind), expression=_any(self._bind(array, array.kind))
        )
        return built, [element, array]

    def _is(self, node: exp.Expression) -> tuple[exp.Expression, list[_Value]]:
        subject = self.value(node.this)
        target = node.expression
        if isinstance(target, exp.Null):
            operand = self._bind(subject, subject.kind if subject.node is not None else "text")
            if subject.kind == "json":  # a JSON null counts as null too
                null_json = exp.Cast(this=exp.Literal.string("null"), to=_type("json"))
                return exp.Paren(
                    this=exp.Or(
                        this=exp.Is(this=operand, expression=exp.Null()),
                        expression=exp.EQ(this=operand.copy(), expression=null_json),
                    )
                ), [subject]
            return exp.Is(this=operand, expression=exp.Null()), [subject]
        if isinstance(target, exp.Boolean):
            if subject.kind != "bool":
                raise FilterError("IS TRUE / IS FALSE needs a true/false value", position_of(node))
            return exp.Is(
                this=self._bind(subject, "bool"), expression=exp.Boolean(this=target.this)
            ), [subject]
        raise FilterError("IS takes NULL, TRUE or FALSE", position_of(node))

    def _like(self, node: exp.Expression) -> tuple[exp.Expression, list[_Value]]:
        subject, pattern = self.value(node.this), self.value(node.expression)
        if node.args.get("escape") is not None:
            raise FilterError("LIKE ... ESCAPE is not supported", position_of(node))
        for side in (subject, pattern):
            if side.node is not None and side.kind not in ("text", "json"):
                raise FilterError(f"LIKE compares text, not {side.kind}", side.position)
        built = type(node)(this=self._as_text(subject), expression=self._as_text(pattern))
        return built, [subject, pattern]

    def _between(self, node: exp.Expression) -> tuple[exp.Expression, list[_Value]]:
        subject = self.value(node.this)
        low, high = self.value(node.args["low"]), self.value(node.args["high"])
        kinds = {_common_kind(subject, low, node), _common_kind(subject, high, node)}
        if subject.node is None:  # a literal subject: its bounds must agree among themselves
            kinds.add(_common_kind(low, high, node))
        if kinds <= _NUMERIC:
            kind: Kind = "number" if "number" in kinds else "integer"
        elif len(kinds) == 1:
            kind = kinds.pop()
        else:
            raise FilterError(f"BETWEEN mixes {' and '.join(sorted(kinds))}", position_of(node))
        built = exp.Between(
            this=self._bind(subject, kind),
            low=self._bind(low, kind),
            high=self._bind(high, kind),
            symmetric=node.args.get("symmetric"),
        )
        return built, [subject, low, high]

    def _in(self, node: exp.Expression) -> tuple[exp.Expression, list[_Value]]:
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            raise FilterError("IN takes a list of values, not a query", position_of(node))
        items = node.expressions
        if not items:
            raise FilterError("IN needs at least one value", position_of(node))
        if len(items) > self.limits.max_in_list:
            raise FilterError(
                f"IN takes at most {self.limits.max_in_list} values", position_of(node)
            )
        subject = self.value(node.this)
        values = [self.value(item) for item in items]
        if not all(v.is_literal for v in values):
            raise FilterError("IN takes literal values", position_of(node))
        kind = subject.kind if subject.node is not None else _literal_kind(values[0])
        if kind == "integer" and any(isinstance(v.literal, float) for v in values):
            kind = "number"  # 5.5 is not rounded to meet an integer
        if kind.endswith("[]") or kind in ("null", "unknown"):
            raise FilterError("IN compares a single value", position_of(node))
        array = self.params.const([_convert(v, kind) for v in values])
        built = exp.EQ(
            this=self._bind(subject, kind),
            expression=_any(exp.Cast(this=array, to=_type(f"{kind}[]"))),
        )
        return built, [subject, *values]

    def _array_operator(self, node: exp.Expression) -> tuple[exp.Expression, list[_Value]]:
        field_value = self.value(node.this)
        if not field_value.kind.endswith("[]"):
            raise FilterError("@> and && compare list fields", position_of(node))
        other = node.expression
        if not isinstance(other, exp.Array):
            raise FilterError("the right side must be ARRAY[...] of values", position_of(other))
        items = self._array_items(other.expressions, field_value.kind, other)
        built = type(node)(this=self._bind(field_value, field_value.kind), expression=items)
        return built, [field_value]

    def _contains(self, node: exp.Expression) -> tuple[exp.Expression, list[_Value]]:
        name = _function_name(node)
        args = list(node.expressions)
        if len(args) < 2:
            raise FilterError(
                f"{name}(field, value, ...) needs a field and a value", position_of(node)
            )
        field_value = self.value(args[0])
        if not field_value.kind.endswith("[]"):
            raise FilterError(f"{name}() takes a list field first", position_of(node))
        items = self._array_items(args[1:], field_value.kind, node)
        operator = exp.ArrayContainsAll if name == "contains" else exp.ArrayOverlaps
        built = operator(this=self._bind(field_value, field_value.kind), expression=items)
        return built, [field_value]

    def _array_items(
        self, items: list[exp.Expression], kind: str, where: exp.Expression
    ) -> exp.Expression:
        if len(items) > self.limits.max_in_list:
            raise FilterError(f"at most {self.limits.max_in_list} values", position_of(where))
        values = [self.value(item) for item in items]
        element = _element(kind)
        bound = []
        for v in values:
            if v.node is not None and v.kind not in (element, "unknown"):
                raise FilterError(f"expects {element} values", v.position)
            bound.append(v.node if v.node is not None else _convert(v, element))
        if all(v.is_literal for v in values):
            return exp.Cast(this=self.params.const(bound), to=_type(kind))
        return exp.Array(expressions=[self._bind(v, element) for v in values])

    # -- value context -----------------------------------------------------------------------

    def value(self, node: exp.Expression) -> _Value:
        position = position_of(node) or _find(self.source, node) or self.at
        self.at = position
        if isinstance(node, exp.Paren):
            inner = self.value(node.this)
            if inner.node is not None:
                inner.node = exp.Paren(this=inner.node)  # (a + b) * c stays that
            return inner
        path = _path(node)
        if path is not None:
            return self._name(path, position)
        if isinstance(node, exp.Literal):
            return _literal(node, position)
        if isinstance(node, exp.Boolean):
            return _Value(None, "bool", literal=bool(node.this), position=position)
        if isinstance(node, exp.Null):
            return _Value(None, "null", literal=None, position=position)
        if isinstance(node, exp.Neg):
            inner = self.value(node.this)
            if inner.is_literal and isinstance(inner.literal, (int, float)):
                return _Value(None, inner.kind, literal=-inner.literal, position=position)
            if inner.kind in _NUMERIC:
                return _Value(exp.Neg(this=self._bind(inner, inner.kind)), inner.kind, inner.hops)
            raise FilterError("'-' applies to numbers", position)
        if isinstance(node, exp.Cast):
            return self._typed_literal(node, position)
        if isinstance(node, exp.Interval):
            return self._interval(node, position)
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
            return self._arithmetic(node, position)
        return self._function(node, position)

    def _name(self, path: tuple[str, ...], position: tuple[int, int] | None) -> _Value:
        if len(path) > self.limits.max_relation_depth + self.limits.max_json_path + 1:
            raise FilterError(f"the name {'.'.join(path)!r} is too long", position)
        try:
            resolved = self.resolver.resolve(path)
        except NameProblem as exc:
            raise FilterError(str(exc), position) from None
        return _Value(resolved.node, resolved.kind, resolved.hops, position=position)

    def _typed_literal(self, node: exp.Expression, position: tuple[int, int] | None) -> _Value:
        to = node.args.get("to")
        target = to.this if isinstance(to, exp.DataType) else None
        kinds = {
            exp.DataType.Type.DATE: "date",
            exp.DataType.Type.TIMESTAMP: "datetime",
            exp.DataType.Type.TIMESTAMPTZ: "datetime",
        }
        if isinstance(node.this, exp.Literal) and node.this.is_string and target in kinds:
            value = _Value(None, "unknown", literal=node.this.this, position=position)
            kind: Kind = kinds[target]  # type: ignore[assignment]
            return _Value(self._bind(value, kind), kind, position=position)
        called = _called(node, self.source)
        if called and called.upper() != "CAST()":  # uuid(x) and others are sqlglot's casts
            reason, at = _refusal(node, self.source)
            raise FilterError(reason, position_at(self.source, at) if at is not None else position)
        raise FilterError("casts are not allowed (only DATE '...' and TIMESTAMP '...')", position)

    def _interval(self, node: exp.Expression, position: tuple[int, int] | None) -> _Value:
        amount = node.this
        unit = node.args.get("unit")
        if not isinstance(amount, exp.Literal):
            raise FilterError("INTERVAL takes a literal: INTERVAL '7 days'", position)
        text = f"{amount.this} {unit.name if unit is not None else ''}".strip()
        if not _INTERVAL.fullmatch(text):
            raise FilterError(f"{text!r} is not an interval such as '7 days' or '1 hour'", position)
        if _interval_years(text) > MAX_INTERVAL_YEARS:
            raise FilterError(f"intervals go up to {MAX_INTERVAL_YEARS} years", position)
        as_text = exp.Cast(this=self.params.const(text), to=exp.DataType.build("TEXT"))
        return _Value(
            exp.Cast(this=as_text, to=exp.DataType.build("INTERVAL")), "interval", position=position
        )

    def _arithmetic(self, node: exp.Expression, position: tuple[int, int] | None) -> _Value:
        left, right = self.value(node.this), self.value(node.expression)
        kinds = {left.kind, right.kind} - {"unknown"}
        hops = left.hops + right.hops
        if kinds <= _NUMERIC and kinds:
            if left.node is None and right.node is None:
                raise FilterError("arithmetic needs a field or function", position)
            kind: Kind = (
                "integer"
                if kinds == {"integer"}
                and not isinstance(node, exp.Div)
                and not (isinstance(left.literal, float) or isinstance(right.literal, float))
                else "number"
            )
            if isinstance(node, exp.Div) and kinds == {"integer"}:
                kind = "integer"
            extra = {"typed": True} if isinstance(node, exp.Div) else {}  # SQL's own division
            built = type(node)(
                this=self._bind(left, _num(left)),
                expression=self._bind(right, _num(right)),
                **extra,
            )
            return _Value(built, kind, hops, position=position)
        temporal = {left.kind, right.kind}
        if isinstance(node, (exp.Add, exp.Sub)) and temporal & _TEMPORAL and "interval" in temporal:
            if isinstance(node, exp.Sub) and left.kind == "interval":
                raise FilterError("subtract an interval from a date, not the reverse", position)
            built = type(node)(
                this=self._bind(left, left.kind), expression=self._bind(right, right.kind)
            )
            return _Value(built, "datetime", hops, position=position)
        if isinstance(node, exp.Sub) and left.kind == "datetime" and right.kind == "datetime":
            built = exp.Sub(
                this=self._bind(left, "datetime"), expression=self._bind(right, "datetime")
            )
            return _Value(built, "interval", hops, position=position)
        raise FilterError(
            f"{_ARITHMETIC[type(node)]} cannot combine {left.kind} and {right.kind}", position
        )

    def _function(self, node: exp.Expression, position: tuple[int, int] | None) -> _Value:
        name = _function_name(node)
        if isinstance(node, exp.CurrentTimestamp) or name == "now":
            if node.args.get("this") is not None or (name == "now" and node.expressions):
                called = _called(node, self.source) or "now()"
                raise FilterError(f"{called} takes no arguments", position)
            return _Value(exp.CurrentTimestamp(), "datetime", position=position)
        if isinstance(node, exp.CurrentDate) or name == "today":
            return _Value(exp.CurrentDate(), "date", position=position)
        text_functions: dict[str, tuple[type[exp.Expression], Kind]] = {
            "lower": (exp.Lower, "text"),
            "upper": (exp.Upper, "text"),
            "length": (exp.Length, "integer"),
            "char_length": (exp.Length, "integer"),
            "trim": (exp.Trim, "text"),
        }
        called = (_called(node, self.source) or name).removesuffix("()")  # not sqlglot's name
        if name in text_functions:
            arg = self._single_argument(node, called, position)
            if arg.kind not in ("text", "unknown"):
                raise FilterError(f"{called}() takes text, not {arg.kind}", position)
            cls, kind = text_functions[name]
            return _Value(cls(this=self._bind(arg, "text")), kind, arg.hops, position=position)
        if name == "abs":
            arg = self._single_argument(node, called, position)
            if arg.kind not in _NUMERIC:
                raise FilterError(f"{called}() takes a number", position)
            return _Value(
                exp.Abs(this=self._bind(arg, arg.kind)), arg.kind, arg.hops, position=position
            )
        reason, at = _refusal(node, self.source)
        if at is not None:  # where the refused text starts, rather than some part inside it
            position = position_at(self.source, at)
        raise FilterError(reason, position)

    def _single_argument(
        self, node: exp.Expression, name: str, position: tuple[int, int] | None
    ) -> _Value:
        args = [node.this] if node.args.get("this") is not None else []
        args += list(node.expressions)
        extra = {
            k for k, v in node.args.items() if v is not None and k not in ("this", "expressions")
        }
        if len(args) != 1 or extra - {"binary"}:
            raise FilterError(f"{name}() takes exactly one argument", position)
        return self.value(args[0])

    # -- turning values into SQL ---------------------------------------------------------------

    def _bind(self, value: _Value, kind: Kind | str) -> exp.Expression:
        if value.node is not None:
            if kind == "json" and value.kind != "json":  # a field meets json: make it json
                return exp.Anonymous(this="to_jsonb", expressions=[value.node])
            return value.node
        if kind in ("unknown", "null"):
            kind = _literal_kind(value)
        converted = _convert(value, kind)
        return exp.Cast(this=self.params.const(converted), to=_type(kind))

    def _as_text(self, value: _Value) -> exp.Expression:
        if value.node is not None and value.kind == "json":
            return exp.JSONBExtractScalar(this=value.node, expression=exp.Literal.string("{}"))
        return self._bind(value, "text")


def _wrap(predicate: exp.Expression, values: list[_Value]) -> exp.Expression:
    """Put a leaf predicate inside the scope of every relation hop its values went through."""
    hops: dict[str, Hop] = {}
    for value in values:
        for hop in value.hops:
            hops.setdefault(hop.key, hop)
    for key in sorted(hops, key=lambda k: k.count("."), reverse=True):  # innermost first
        predicate = hops[key].wrap(predicate)
    return predicate


def _common_kind(left: _Value, right: _Value, node: exp.Expression) -> Kind:
    if left.node is None and right.node is None:
        kind = _literal_kind(left) if left.kind == "unknown" else left.kind
        return kind
    typed = left if left.node is not None else right
    other = right if typed is left else left
    if other.node is None:
        if typed.kind == "integer" and isinstance(other.literal, float):
            return "number"  # 3.5 is not rounded to meet an integer: compare as numbers
        return typed.kind
    a, b = typed.kind, other.kind
    if a == b or {a, b} <= _NUMERIC or {a, b} <= _TEMPORAL:
        return a
    if "json" in (a, b):
        return "json"
    raise FilterError(f"cannot compare {a} with {b}", other.position or position_of(node))


def _literal_kind(value: _Value) -> Kind:
    literal = value.literal
    if isinstance(literal, bool):
        return "bool"
    if isinstance(literal, int):
        return "integer"
    if isinstance(literal, float):
        return "number"
    if literal is None:
        return "null"
    return "text"


def _num(value: _Value) -> Kind:
    if value.node is not None:
        return value.kind
    return (
        "integer"
        if isinstance(value.literal, int) and not isinstance(value.literal, bool)
        else "number"
    )


def _convert(value: _Value, kind: Kind | str) -> Any:
    """A literal as the Python value asyncpg binds for `kind`; FilterError if it is not one."""
    literal = value.literal
    where = value.position
    if value.node is not None:
        raise FilterError("expects a value", where)
    if literal is None:
        raise FilterError("NULL is not a value here: use IS NULL", where)
    if kind == "json":
        if (
            isinstance(literal, int)
            and not isinstance(literal, bool)
            and not -_BIGINT <= literal < _BIGINT
        ):
            raise FilterError("the number is out of range", where)
        return literal
    if kind == "bool":
        if not isinstance(literal, bool):
            raise FilterError("expects true or false", where)
        return literal
    if kind in _NUMERIC:
        if isinstance(literal, bool) or not isinstance(literal, (int, float)):
            raise FilterError("expects a number", where)
        if isinstance(literal, float) and not math.isfinite(literal):
            raise FilterError("the number is out of range", where)
        if kind == "integer" and isinstance(literal, int):
            if not -_BIGINT <= literal < _BIGINT:
                raise FilterError("the number is out of range", where)
            return literal
        try:
            return float(literal)
        except OverflowError:  # an integer literal past what a double holds (about 1.8e308)
            raise FilterError("the number is out of range", where) from None
    if not isinstance(literal, str):
        raise FilterError(f"expects a {kind} value in quotes", where)
    if kind == "text":
        return literal
    if kind == "uuid":
        if not _UUID.fullmatch(literal):
            raise FilterError(f"{literal[:40]!r} is not an id (a UUID)", where)
        return str(uuid.UUID(literal))
    if kind == "datetime":
        return _datetime(literal, where)
    if kind == "date":
        try:
            return date.fromisoformat(literal)
        except ValueError:
            raise FilterError(f"{literal[:40]!r} is not a date such as 2026-01-31", where) from None
    raise FilterError(f"a literal cannot be a {kind}", where)


def _interval_years(text: str) -> float:
    return sum(
        float(amount) * _YEARS_PER[unit.lower().rstrip("s")]
        for amount, unit in _INTERVAL_PART.findall(text)
    )


def _datetime(text: str, where: tuple[int, int] | None) -> datetime:
    try:
        parsed = datetime.fromisoformat(text) if len(text) <= 40 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise FilterError(f"{text[:40]!r} is not a date-time such as 2026-01-31T12:00:00Z", where)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise FilterError("the date-time is out of range", where) from None


def _literal(node: exp.Literal, position: tuple[int, int] | None) -> _Value:
    if node.is_string:
        return _Value(None, "unknown", literal=str(node.this), position=position)
    text = str(node.this)
    try:
        number: int | float = int(text) if re.fullmatch(r"\d+", text) else float(text)
    except ValueError:
        raise FilterError(f"{text[:40]!r} is not a number", position) from None
    if isinstance(number, float) and not math.isfinite(number):
        raise FilterError("the number is out of range", position)
    return _Value(
        None, "integer" if isinstance(number, int) else "number", literal=number, position=position
    )


def _path(node: exp.Expression) -> tuple[str, ...] | None:
    if isinstance(node, exp.Column):
        if isinstance(node.this, exp.Star):
            raise FilterError("'*' is not allowed", position_of(node))
        return tuple(_name(part) for part in node.parts)  # type: ignore[arg-type]
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Identifier):
        left = _path(node.this)
        return None if left is None else (*left, _name(node.expression))
    return None


def group(node: exp.Expression) -> exp.Expression:
    """`node` in parentheses, unless it already is in some."""
    return node if isinstance(node, exp.Paren) else exp.Paren(this=node)


def _find(source: str, node: exp.Expression) -> tuple[int, int] | None:
    """Where in the text a node sqlglot kept no position for (a keyword, `?`) first appears."""
    if isinstance(node, exp.Placeholder):
        word = f":{node.name}" if node.name and node.name != "?" else "?"
    elif isinstance(node, exp.Boolean):
        word = "true" if node.this else "false"
    elif isinstance(node, exp.Func):
        word = _function_name(node).split("(")[0]
    elif isinstance(node, exp.Null):
        word = "null"
    else:
        return None
    offset = source.lower().find(word.lower()) if word else -1
    if offset < 0:
        return None
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


def _any(node: exp.Expression) -> exp.Expression:
    return exp.Any(this=exp.Paren(this=node))


def _a(kind: str) -> str:
    words = {
        "integer": "an integer",
        "uuid": "an id",
        "unknown": "a value",
        "json": "JSON",
        "text[]": "a list",
        "uuid[]": "a list of ids",
        "interval": "an interval",
    }
    return words.get(kind, f"a {kind}" if kind != "text" else "text")


def _name(identifier: exp.Expression) -> str:
    """An identifier as PostgreSQL reads it: unquoted ones are folded to lowercase."""
    name = str(identifier.name)
    return name if identifier.args.get("quoted") else name.lower()


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _function_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return ""


_ARITHMETIC: dict[type[exp.Expression], str] = {
    exp.Add: "'+'",
    exp.Sub: "'-'",
    exp.Mul: "'*'",
    exp.Div: "'/'",
}
FUNCTIONS = (
    "lower(), upper(), length(), char_length(), trim(), abs(), now(), current_date, "
    "contains() and contains_any()"
)
_NO_QUERY = "a filter is a condition on the record, not a query"
# What the language refuses, in the client's terms and with what to write instead. Everything
# the compiler does not build ends here or in _refusal's fallbacks: never a sqlglot class name.
_REFUSALS: dict[type[exp.Expression], str] = {
    exp.Subquery: f"a subquery is not allowed: {_NO_QUERY}",
    exp.Select: f"a query is not allowed: {_NO_QUERY}",
    exp.Union: f"UNION is not allowed: {_NO_QUERY}",
    exp.Intersect: f"INTERSECT is not allowed: {_NO_QUERY}",
    exp.Except: f"EXCEPT is not allowed: {_NO_QUERY}",
    exp.Exists: f"EXISTS (...) is not allowed: {_NO_QUERY}",
    exp.Case: "CASE is not supported: write the cases as conditions joined with AND and OR",
    exp.Array: "ARRAY[...] is allowed only on the right of @> or && (tags @> ARRAY['a'])",
    exp.Bracket: "subscripts ([...]) are not supported: test a list field with contains() "
    "or = ANY(...)",
    exp.AtTimeZone: "AT TIME ZONE is not supported: date-times compare as instants; give a "
    "value with its offset ('2026-01-31T12:00:00+02:00')",
    exp.Any: "ANY(...) is allowed only after = with a list field: 'news' = ANY(tags)",
    exp.All: "ALL(...) is not supported: use contains(field, value, ...)",
    exp.Tuple: "a list in parentheses is allowed only after IN, as in views IN (1, 2)",
    exp.Escape: "ESCAPE is not supported: in a LIKE pattern a backslash escapes % and _ "
    "(title LIKE '100\\%')",
    exp.Window: "window functions (OVER ...) are not supported: a filter looks at one record",
}
# Nodes sqlglot also builds from calls (if(a, b, c) is an If): a call is refused as a call.
_OPERATORS: dict[type[exp.Expression], str] = {
    exp.Parameter: "a parameter is not allowed: write the value itself",
    exp.Placeholder: "a placeholder is not allowed: write the value itself",
    exp.Star: "'*' is not allowed: name a field",
    exp.If: "CASE is not supported: write the cases as conditions joined with AND and OR",
    exp.Concat: "two strings in a row are not supported: write them as one string",
}


def _refusal(node: exp.Expression, source: str) -> tuple[str, int | None]:
    """Why `node` is refused, naming it as the client wrote it, and where that text starts."""
    called = _called(node, source)
    at = node.meta[CALLED][0] if called else None
    if type(node) in _REFUSALS:
        return _REFUSALS[type(node)], at
    if called is not None:
        return f"the function {called} is not allowed: filters may call {FUNCTIONS}", at
    if type(node) in _OPERATORS:
        return _OPERATORS[type(node)], None
    span, written = _span(node, source), _written(node, source)
    condition, alias = _span(node.this, source), _span(node.args.get("alias"), source)
    if isinstance(node, exp.Alias) and condition and alias:  # `views = 1 x`, `x AS y`
        extra = source[condition[1] + 1 : alias[1] + 1]
        at = condition[1] + 1 + len(extra) - len(extra.lstrip())
        return (
            f"unexpected '{extra.strip()[:40]}': a filter is one condition; join conditions "
            "with AND or OR",
            at,
        )
    if span and written and isinstance(node, exp.Dot) and "(" in written:
        name = written.split("(")[0].strip()
        return f"the function {name}() is not allowed: filters may call {FUNCTIONS}", span[0]
    if span and written and isinstance(node, exp.Dot):
        return f"'{written[:40]}' is neither a field name nor a number", span[0]
    if span and written:
        return f"'{written[:40]}' is not supported in a filter", span[0]
    return "this part of the expression is not supported in a filter", None


def _called(node: exp.Expression, source: str) -> str | None:
    """A function as the client called it (`char_length(`, `version(`, `current_user`), from
    the name token the parser recorded; None for anything else."""
    if not source or CALLED not in node.meta:
        return None
    first, last = node.meta[CALLED]
    name = source[first : last + 1]
    if not re.fullmatch(r"\w+", name):
        return None
    return name + "()" if source[last + 1 :].lstrip().startswith("(") else name


def _span(node: Any, source: str) -> tuple[int, int] | None:
    """The first and last offsets of the client's text under `node` that sqlglot kept."""
    if not isinstance(node, exp.Expression) or not source:
        return None
    spans = [
        (n.meta["start"], n.meta["end"]) for n in node.walk() if {"start", "end"} <= n.meta.keys()
    ]
    if not spans:
        return None
    return min(s for s, _ in spans), max(e for _, e in spans)


def _written(node: exp.Expression, source: str) -> str | None:
    """The client's text for `node` (None when sqlglot kept no position for any of it), with
    the closing parentheses it leaves open (sqlglot keeps no position for those)."""
    span = _span(node, source)
    if span is None:
        return None
    start, end = span
    open_parens = source[start : end + 1].count("(") - source[start : end + 1].count(")")
    while open_parens > 0 and end + 1 < len(source) and source[end + 1] in " \t\n)":
        end += 1
        open_parens -= source[end] == ")"
    return source[start : end + 1]


def _element(kind: str) -> Kind:
    return kind[:-2]  # type: ignore[return-value]


def _type(kind: str) -> exp.DataType:
    if kind.endswith("[]"):
        return exp.DataType.build(f"{PG_TYPES[kind[:-2]]}[]", dialect="postgres")
    return exp.DataType.build(PG_TYPES[kind], dialect="postgres")
