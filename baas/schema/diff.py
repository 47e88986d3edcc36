"""Diff two schemas into an ordered migration plan of steps, each with its DDL.

The planner matches collections and fields by name, or by a declared `renamed_from` (never by
guessing), carries their ids over, and orders the work so every statement can run: drop changed
constraints/indexes/triggers -> renames -> new tables, columns and type changes -> constraints,
indexes and triggers -> dropped columns and tables. Steps that can lose data are marked destructive.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlglot import exp

from baas.db.sqltree import render
from baas.schema import ddl
from baas.schema.document import SchemaError
from baas.schema.fields import column_type
from baas.schema.models import RULE_OPERATIONS, Collection, Field, Schema
from baas.schema.names import new_id


@dataclass(frozen=True)
class Statement:
    """One SQL statement; with `expect_zero` it is a query that must return 0 (else: message)."""

    sql: str
    expect_zero: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sql": self.sql}
        if self.expect_zero:
            out["expect_zero"] = self.expect_zero
        return out


@dataclass(frozen=True)
class Step:
    action: str
    target: str
    summary: str
    destructive: bool = False
    statements: tuple[Statement, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "summary": self.summary,
            "destructive": self.destructive,
            "statements": [s.to_json() for s in self.statements],
        }


@dataclass(frozen=True)
class Plan:
    base_version: int
    steps: tuple[Step, ...]
    schema: Schema  # the schema after the plan, with ids assigned

    @property
    def empty(self) -> bool:
        return not self.steps

    @property
    def destructive_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.destructive)

    def to_json(self) -> dict[str, Any]:
        return {
            "base_version": self.base_version,
            "destructive": bool(self.destructive_steps),
            "steps": [s.to_json() for s in self.steps],
        }


def _stmts(*nodes: exp.Expression) -> tuple[Statement, ...]:
    return tuple(Statement(render(n)) for n in nodes)


def plan(live: Schema, wanted: Schema, populated: frozenset[str] = frozenset()) -> Plan:
    """The steps that turn `live` into `wanted`; `populated` names live collections with rows."""
    problems: list[str] = []
    matches = _match(live.collections, wanted.collections, "collections", problems)
    result: list[Collection] = []
    field_matches: dict[str, dict[str, Field | None]] = {}
    for c in wanted.collections:
        old = matches[c.name]
        fmatch = _match(
            old.fields if old else (), c.fields, f"collections.{c.name}.fields", problems
        )
        field_matches[c.name] = fmatch
        result.append(_with_ids(c, old, fmatch))
    target = Schema(collections=tuple(result), version=live.version + 1)
    planner = _Planner(live, target, matches, field_matches, populated)
    steps = planner.steps()
    problems += planner.problems
    if problems:
        raise SchemaError(problems)
    return Plan(base_version=live.version, steps=tuple(steps), schema=target)


def _match(
    old_items: tuple[Any, ...], new_items: tuple[Any, ...], path: str, problems: list[str]
) -> dict[str, Any]:
    """Map each new item's name to the old item it continues (same name or renamed_from)."""
    old_by_name = {o.name: o for o in old_items}
    new_names = {n.name for n in new_items}
    taken: set[str] = set()
    out: dict[str, Any] = {}
    for item in new_items:
        old = old_by_name.get(item.name)
        hint = item.renamed_from
        if old is None and hint:
            if hint in new_names:
                problems.append(
                    f"{path}.{item.name}.renamed_from: {hint!r} is still declared; "
                    "rename in one apply, then reuse the old name in the next"
                )
            else:
                old = old_by_name.get(hint)
        if old is not None and old.name in taken:
            problems.append(f"{path}.{item.name}: {old.name!r} is continued twice")
            old = None
        if old is not None:
            taken.add(old.name)
        out[item.name] = old
    return out


def _with_ids(c: Collection, old: Collection | None, fmatch: dict[str, Field | None]) -> Collection:
    fields = tuple(
        replace(f, id=fmatch[f.name].id if fmatch[f.name] else new_id(), renamed_from=None)  # type: ignore[union-attr]
        for f in c.fields
    )
    field_ids = {f.name: f.id for f in fields}
    old_field_ids = {f.name: f.id for f in old.fields} if old else {}
    old_indexes = {
        (tuple(old_field_ids.get(n, n) for n in i.fields), i.unique): i.id
        for i in (old.indexes if old else ())
    }
    indexes = tuple(
        replace(
            i,
            id=old_indexes.get((tuple(field_ids.get(n, n) for n in i.fields), i.unique))
            or new_id(),
        )
        for i in c.indexes
    )
    return replace(
        c, id=old.id if old else new_id(), fields=fields, indexes=indexes, renamed_from=None
    )


class _Planner:
    def __init__(
        self,
        live: Schema,
        target: Schema,
        matches: dict[str, Collection | None],
        field_matches: dict[str, dict[str, Field | None]],
        populated: frozenset[str],
    ) -> None:
        self.live = live
        self.target = target
        self.matches = matches
        self.field_matches = field_matches
        self.populated = populated
        self.problems: list[str] = []

    def steps(self) -> list[Step]:
        old_objects = ddl.derived_objects(self.live)
        new_objects = ddl.derived_objects(self.target)
        rebuilt = self._retyped_field_ids()
        stale = [o for n, o in old_objects.items() if _changed(o, new_objects.get(n), rebuilt)]
        fresh = [o for n, o in new_objects.items() if _changed(o, old_objects.get(n), rebuilt)]
        return [
            *(
                Step(
                    "drop_" + _kind(o),
                    _where(o, self.live),
                    f"drop {o.summary}",
                    statements=_stmts(*o.drop),
                )
                for o in stale
            ),
            *self._renames(),
            *self._creates_and_changes(),
            *(
                Step(
                    "add_" + _kind(o),
                    _where(o, self.target),
                    f"add {o.summary}",
                    statements=self._create_statements(o),
                )
                for o in fresh
            ),
            *self._drops(),
        ]

    def _retyped_field_ids(self) -> set[str]:
        out = set()
        for c in self.target.collections:
            for f in c.fields:
                old = self.field_matches[c.name][f.name]
                if old is not None and column_type(old) != column_type(f):
                    out.add(f.id)
        return out

    def _create_statements(self, o: ddl.Derived) -> tuple[Statement, ...]:
        out = []
        for node in o.create:
            sql = render(node)
            if sql.startswith("SELECT count"):
                out.append(Statement(sql, f"records hold ids that do not exist ({o.summary})"))
            else:
                out.append(Statement(sql))
        return tuple(out)

    def _renames(self) -> list[Step]:
        steps = []
        for c in self.target.collections:
            old = self.matches[c.name]
            if old is not None and old.name != c.name:
                steps.append(
                    Step(
                        "rename_collection",
                        c.name,
                        f"rename collection {old.name} to {c.name}",
                        statements=_stmts(ddl.rename_table(old.name, c.name)),
                    )
                )
        for c in self.target.collections:
            for f in c.fields:
                oldf = self.field_matches[c.name][f.name]
                if oldf is not None and oldf.name != f.name:
                    steps.append(
                        Step(
                            "rename_field",
                            f"{c.name}.{f.name}",
                            f"rename field {c.name}.{oldf.name} to {f.name}",
                            statements=_stmts(ddl.rename_column(c, oldf.name, f.name)),
                        )
                    )
        return steps

    def _creates_and_changes(self) -> list[Step]:
        steps: list[Step] = []
        for c in self.target.collections:
            old = self.matches[c.name]
            if old is None:
                steps.append(
                    Step(
                        "create_collection",
                        c.name,
                        f"create collection {c.name} ({len(c.fields)} fields)",
                        statements=_stmts(*ddl.create_table(c)),
                    )
                )
                continue
            populated = old.name in self.populated
            for f in c.fields:
                oldf = self.field_matches[c.name][f.name]
                if oldf is None:
                    steps.append(self._add_field(c, f, populated))
                else:
                    steps.extend(self._change_field(c, oldf, f, populated))
            changed = [
                op
                for op in RULE_OPERATIONS
                if c.rules.for_operation(op) != old.rules.for_operation(op)
            ]
            if changed:
                steps.append(
                    Step("set_rules", c.name, f"set the {', '.join(changed)} rules of {c.name}")
                )
            if c.push != old.push:
                steps.append(Step("set_push", c.name, f"set the push triggers of {c.name}"))
            if tuple(f.id for f in c.fields if self.field_matches[c.name][f.name]) != tuple(
                f.id for f in old.fields if f.id in {x.id for x in c.fields}
            ):
                steps.append(Step("reorder_fields", c.name, f"reorder the fields of {c.name}"))
        return steps

    def _add_field(self, c: Collection, f: Field, populated: bool) -> Step:
        if populated and f.not_null and ddl.default_sql(f) is None:
            self.problems.append(
                f"collections.{c.name}.fields.{f.name}: cannot add a required field without a "
                f"default: {c.name} has records. Give it a default, or add it optional, fill "
                "it, then make it required"
            )
        if populated and f.required and f.multiple:
            self.problems.append(
                f"collections.{c.name}.fields.{f.name}: cannot add a required multi-valued "
                f"field: the existing records of {c.name} would have none"
            )
        return Step(
            "add_field",
            f"{c.name}.{f.name}",
            f"add field {c.name}.{f.name} ({describe(f)})",
            statements=_stmts(ddl.add_column(c, f)),
        )

    def _change_field(self, c: Collection, old: Field, new: Field, populated: bool) -> list[Step]:
        steps: list[Step] = []
        target = f"{c.name}.{new.name}"
        retyped = column_type(old) != column_type(new)
        if retyped:
            conversion = ddl.conversion(old, new)
            if conversion is None:
                self.problems.append(
                    f"collections.{c.name}.fields.{new.name}: cannot change {describe(old)} to "
                    f"{describe(new)}; add a new field and copy the data instead"
                )
                return steps
            using, narrowing = conversion
            nodes = []
            if ddl.default_sql(old) is not None:
                nodes.append(ddl.drop_default(c, new.name))
            nodes.append(ddl.alter_type(c, new, using))
            steps.append(
                Step(
                    "change_type",
                    target,
                    f"change {target} from {describe(old)} to {describe(new)}",
                    destructive=narrowing,
                    statements=_stmts(*nodes),
                )
            )
        elif old.type != new.type:
            narrowing = new.type != "text"
            note = " (existing values are not re-checked)" if narrowing else ""
            steps.append(
                Step(
                    "change_type",
                    target,
                    f"change {target} from {old.type} to {new.type}{note}",
                    destructive=narrowing,
                )
            )
        # A type change drops the old default first, so the new one (if any) is set again.
        new_default = _default_sql(new)
        if (retyped and new_default is not None) or (
            not retyped and _default_sql(old) != new_default
        ):
            steps.append(
                Step(
                    "set_default",
                    target,
                    f"set the default of {target}",
                    statements=_stmts(ddl.set_default(c, new)),
                )
            )
        steps.extend(self._nullability(c, old, new, populated))
        changed = _option_changes(old, new)
        if changed:
            steps.append(Step("update_field", target, f"update {target}: {', '.join(changed)}"))
        return steps

    def _nullability(self, c: Collection, old: Field, new: Field, populated: bool) -> list[Step]:
        target = f"{c.name}.{new.name}"
        if old.not_null == new.not_null:
            return []
        if not new.not_null:
            return [
                Step(
                    "set_optional",
                    target,
                    f"allow {target} to be empty",
                    statements=_stmts(ddl.set_not_null(c, new, False)),
                )
            ]
        if new.multiple:
            return [
                Step(
                    "set_not_null",
                    target,
                    f"store empty lists instead of null in {target}",
                    statements=_stmts(ddl.fill_nulls(c, new), ddl.set_not_null(c, new, True)),
                )
            ]
        if ddl.default_sql(new) is not None:
            return [
                Step(
                    "set_required",
                    target,
                    f"require {target} (filling empty ones with its default)",
                    statements=_stmts(ddl.fill_nulls(c, new), ddl.set_not_null(c, new, True)),
                )
            ]
        check = Statement(
            render(ddl.count_nulls(c, new)), f"records of {c.name} have no value for {new.name}"
        )
        return [
            Step(
                "set_required",
                target,
                f"require {target} (no default: fails if a record has no value)",
                destructive=populated,
                statements=(check, *_stmts(ddl.set_not_null(c, new, True))),
            )
        ]

    def _drops(self) -> list[Step]:
        steps = []
        for c in self.target.collections:
            old = self.matches[c.name]
            if old is None:
                continue
            kept = {f.id for f in c.fields}
            for f in old.fields:
                if f.id not in kept:
                    steps.append(
                        Step(
                            "drop_field",
                            f"{c.name}.{f.name}",
                            f"drop field {c.name}.{f.name} and its data",
                            destructive=True,
                            statements=_stmts(ddl.drop_column(c, f)),
                        )
                    )
        continued = {o.name for o in self.matches.values() if o is not None}
        for old in self.live.collections:
            if old.name not in continued:
                steps.append(
                    Step(
                        "drop_collection",
                        old.name,
                        f"drop collection {old.name} and all its records",
                        destructive=True,
                        statements=_stmts(ddl.drop_table(old)),
                    )
                )
        return steps


def _changed(obj: ddl.Derived, other: ddl.Derived | None, rebuilt: set[str]) -> bool:
    return other is None or other.signature != obj.signature or obj.owner in rebuilt


def _kind(o: ddl.Derived) -> str:
    suffix = o.name.rsplit("_", 1)[-1]
    return {
        "ck": "check",
        "uq": "unique",
        "fk": "relation",
        "rel": "relation",
        "ix": "index",
        "idx": "index",
        "uix": "index",
        "search": "search_index",
        "auth": "trigger",
    }.get(suffix, "object")


def _where(o: ddl.Derived, schema: Schema) -> str:
    for c in schema.collections:
        if c.id == o.host:
            for f in c.fields:
                if f.id == o.owner:
                    return f"{c.name}.{f.name}"
            return c.name
    return o.name


def _default_sql(f: Field) -> str | None:
    node = ddl.default_sql(f)
    return None if node is None else render(node)


# Options only the server enforces (no DDL shows them), reported as `update_field` steps.
_METADATA = (
    "hidden",
    "private",
    "pattern",
    "max_size",
    "mime_types",
    "protected",
    "serve_inline",
    "thumbs",
)


def _option_changes(old: Field, new: Field) -> list[str]:
    return [k for k in _METADATA if getattr(old, k) != getattr(new, k)]


def describe(f: Field) -> str:
    """A short description of a field for plan summaries: `text, required, max 200`."""
    parts = [f"multiple {f.type}" if f.multiple else f.type]
    if f.type == "relation":
        parts[0] += f" to {f.collection}"
    if f.required:
        parts.append("required")
    elif not f.nullable:
        parts.append("not null")
    if f.unique:
        parts.append("unique")
    if f.min is not None:
        parts.append(f"min {f.min:g}")
    if f.max is not None:
        parts.append(f"max {f.max:g}")
    if f.default is not None:
        parts.append(f"default {f.default.value!r}")
    if f.hidden:
        parts.append("hidden")
    if f.private:
        parts.append("private")
    return ", ".join(parts)
