"""DDL for collections: tables, columns, constraints, indexes and triggers, as sqlglot trees.

Every statement comes from a constant template whose placeholders are replaced by identifier or
literal nodes built from the validated model; `derived_objects` lists the constraints, indexes and
triggers a schema implies, each with a signature, so the planner can tell which ones changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
from sqlglot import exp

from baas.db.sqltree import column, ident, literal, render, template
from baas.schema.auth_collection import AUTH_COLLECTION, SECRET_FIELDS
from baas.schema.fields import TYPES, column_type
from baas.schema.models import TABLE_SCHEMA, Collection, Field, Index, Schema
from baas.schema.names import constraint_name

S = TABLE_SCHEMA
_SECRETS = ", ".join(f"'{name}'" for name in sorted(SECRET_FIELDS))  # constant names, not input


def _t(name: str) -> dict[str, str]:
    return {"s": S, "t": name}


# -- tables and columns ---------------------------------------------------------------------------


def create_table(c: Collection) -> list[exp.Expression]:
    """CREATE TABLE with system columns and every field column (relations get FKs later)."""
    create = template(
        "CREATE TABLE __s.__t (id UUID NOT NULL DEFAULT baas.uuid7(), "
        "created TIMESTAMPTZ NOT NULL DEFAULT now(), updated TIMESTAMPTZ NOT NULL DEFAULT now(), "
        "CONSTRAINT __pk PRIMARY KEY (id))",
        pk=constraint_name(c.id, "pk"),
        **_t(c.name),
    )
    schema_node = create.this
    columns = [column_def(f) for f in c.fields]
    schema_node.set(
        "expressions", schema_node.expressions[:3] + columns + schema_node.expressions[3:]
    )
    touch = template(
        "CREATE TRIGGER __n BEFORE UPDATE ON __s.__t FOR EACH ROW "
        "EXECUTE FUNCTION baas.touch_updated()",
        n=constraint_name(c.id, "touch"),
        **_t(c.name),
    )
    changes = template(
        "CREATE TRIGGER __n AFTER INSERT OR UPDATE OR DELETE ON __s.__t FOR EACH ROW "
        # secrets never enter the change log (the arguments name the columns left out)
        f"EXECUTE FUNCTION baas.record_changed({_SECRETS if c.name == AUTH_COLLECTION else ''})",
        n=constraint_name(c.id, "changes"),
        **_t(c.name),
    )
    created_index = template(
        "CREATE INDEX __n ON __s.__t (created, id)",
        n=constraint_name(c.id, "created"),
        **_t(c.name),
    )
    return [create, touch, changes, created_index]


def column_def(f: Field) -> exp.ColumnDef:
    constraints = []
    if f.not_null:
        constraints.append(exp.ColumnConstraint(kind=exp.NotNullColumnConstraint()))
    default = default_sql(f)
    if default is not None:
        constraints.append(exp.ColumnConstraint(kind=exp.DefaultColumnConstraint(this=default)))
    return exp.ColumnDef(
        this=ident(f.name),
        kind=exp.DataType.build(column_type(f), dialect="postgres"),
        constraints=constraints,
    )


def default_sql(f: Field) -> exp.Expression | None:
    """The column DEFAULT for a field, or None."""
    if f.default is None:
        return (
            _parse_expr("CAST('{}' AS __x)".replace("__x", column_type(f))) if f.multiple else None
        )
    if f.default.is_now:
        return _parse_expr("now()" if f.type == "datetime" else "CURRENT_DATE")
    value = f.default.value
    if f.multiple:
        items = exp.Array(expressions=[literal(v) for v in value])
        return exp.Cast(this=items, to=exp.DataType.build(column_type(f), dialect="postgres"))
    if f.type == "json":
        return _cast(literal(orjson.dumps(value).decode()), "jsonb")
    if f.type in ("datetime", "date"):
        return _cast(literal(value), TYPES[f.type].column)
    return literal(value)


def add_column(c: Collection, f: Field) -> exp.Expression:
    stmt = template("ALTER TABLE __s.__t ADD COLUMN __c TEXT", c=f.name, **_t(c.name))
    stmt.args["actions"][0] = column_def(f)
    return stmt


def drop_column(c: Collection, f: Field) -> exp.Expression:
    return template("ALTER TABLE __s.__t DROP COLUMN __c", c=f.name, **_t(c.name))


def rename_column(c: Collection, old: str, new: str) -> exp.Expression:
    return template("ALTER TABLE __s.__t RENAME COLUMN __a TO __b", a=old, b=new, **_t(c.name))


def rename_table(old: str, new: str) -> exp.Expression:
    return template("ALTER TABLE __s.__t RENAME TO __b", b=new, **_t(old))


def drop_table(c: Collection) -> exp.Expression:
    return template("DROP TABLE __s.__t", **_t(c.name))


def set_default(c: Collection, f: Field) -> exp.Expression:
    default = default_sql(f)
    if default is None:
        return drop_default(c, f.name)
    return template(
        "ALTER TABLE __s.__t ALTER COLUMN __c SET DEFAULT __v", c=f.name, v=default, **_t(c.name)
    )


def drop_default(c: Collection, name: str) -> exp.Expression:
    return template("ALTER TABLE __s.__t ALTER COLUMN __c DROP DEFAULT", c=name, **_t(c.name))


def set_not_null(c: Collection, f: Field, not_null: bool) -> exp.Expression:
    action = "SET" if not_null else "DROP"
    return template(
        f"ALTER TABLE __s.__t ALTER COLUMN __c {action} NOT NULL", c=f.name, **_t(c.name)
    )


def fill_nulls(c: Collection, f: Field) -> exp.Expression:
    """UPDATE ... SET col = DEFAULT WHERE col IS NULL (before SET NOT NULL)."""
    return template("UPDATE __s.__t SET __c = DEFAULT WHERE __c IS NULL", c=f.name, **_t(c.name))


def count_nulls(c: Collection, f: Field) -> exp.Expression:
    return template("SELECT count(*) FROM __s.__t WHERE __c IS NULL", c=f.name, **_t(c.name))


def has_rows(c: Collection) -> exp.Expression:
    return template("SELECT EXISTS (SELECT 1 FROM __s.__t)", **_t(c.name))


# -- type changes ----------------------------------------------------------------------------------

# (old column type, new column type) -> (USING expression with __c, narrowing?)
_CONVERSIONS: dict[tuple[str, str], tuple[str, bool]] = {
    ("bigint", "double precision"): ("CAST(__c AS DOUBLE PRECISION)", False),
    ("double precision", "bigint"): ("CAST(ROUND(__c) AS BIGINT)", True),
    ("boolean", "bigint"): ("CAST(CAST(__c AS INT) AS BIGINT)", False),
    ("bigint", "boolean"): ("__c <> 0", True),
    ("date", "timestamptz"): ("CAST(__c AS TIMESTAMPTZ)", False),
    ("timestamptz", "date"): ("CAST(__c AS DATE)", True),
    ("text[]", "uuid[]"): ("CAST(__c AS UUID[])", True),
    ("uuid[]", "text[]"): ("CAST(__c AS TEXT[])", False),
    ("text", "text[]"): (
        "CASE WHEN __c IS NULL THEN CAST('{}' AS TEXT[]) ELSE ARRAY[__c] END",
        False,
    ),
    ("uuid", "uuid[]"): (
        "CASE WHEN __c IS NULL THEN CAST('{}' AS UUID[]) ELSE ARRAY[__c] END",
        False,
    ),
    ("text[]", "text"): ("__c[1]", True),
    ("uuid[]", "uuid"): ("__c[1]", True),
}
for _scalar in ("bigint", "double precision", "boolean", "date", "timestamptz", "uuid", "jsonb"):
    _CONVERSIONS[(_scalar, "text")] = ("CAST(__c AS TEXT)", False)
    if _scalar != "jsonb":
        _CONVERSIONS[("text", _scalar)] = (f"CAST(__c AS {_scalar.upper()})", True)
for _scalar in ("text", "bigint", "double precision", "boolean"):
    _CONVERSIONS[(_scalar, "jsonb")] = ("TO_JSONB(__c)", False)


def conversion(old: Field, new: Field) -> tuple[str, bool] | None:
    """(USING template, narrowing) to turn old's column into new's, or None if unsupported."""
    return _CONVERSIONS.get((column_type(old), column_type(new)))


def alter_type(c: Collection, new: Field, using: str) -> exp.Expression:
    type_sql = column_type(new).upper()
    using_node = template(f"SELECT {using}", c=new.name).expressions[0]
    return template(
        f"ALTER TABLE __s.__t ALTER COLUMN __c SET DATA TYPE {type_sql} USING __u",
        c=new.name,
        u=using_node,
        **_t(c.name),
    )


# -- derived objects -------------------------------------------------------------------------


@dataclass(frozen=True)
class Derived:
    """A constraint, index or trigger the schema implies; a new `signature` means: rebuild it."""

    name: str
    host: str  # id of the collection whose table holds it
    owner: str  # id of the field/index it belongs to
    summary: str
    signature: str
    create: tuple[exp.Expression, ...]
    drop: tuple[exp.Expression, ...]


def derived_objects(schema: Schema) -> dict[str, Derived]:
    """Every derived object of `schema`, by name."""
    by_id = {c.id: c for c in schema.collections}
    by_name = {c.name: c for c in schema.collections}
    out: dict[str, Derived] = {}
    for c in schema.collections:
        for f in c.fields:
            for obj in _field_objects(c, f, by_name):
                out[obj.name] = obj
        for index in c.indexes:
            obj = _index_object(c, index)
            out[obj.name] = obj
        if c.search:
            obj = _search_object(c)
            out[obj.name] = obj
        if c.name == AUTH_COLLECTION:
            obj = _auth_trigger(c)
            out[obj.name] = obj
    del by_id
    return out


def _auth_trigger(c: Collection) -> Derived:
    """On users: a deleted user's sessions, tokens and factors go; a disabled one's sessions."""
    name = constraint_name(c.id, "auth")
    create = template(
        "CREATE TRIGGER __n AFTER DELETE OR UPDATE OF disabled ON __s.__t FOR EACH ROW "
        "EXECUTE FUNCTION baas.auth_user_changed()",
        n=name,
        **_t(c.name),
    )
    drop = template("DROP TRIGGER __n ON __s.__t", n=name, **_t(c.name))
    return _derived(name, c, c.id, "end sessions of deleted or disabled users", "v1", create, drop)


def _field_objects(c: Collection, f: Field, by_name: dict[str, Collection]) -> list[Derived]:
    objs = []
    check = check_expression(f)
    if check is not None:
        objs.append(_check_object(c, f, check))
    if f.unique:
        name = constraint_name(f.id, "uq")
        objs.append(
            _derived(
                name,
                c,
                f.id,
                f"unique index on {c.name}.{f.name}",
                f"{column_type(f)}",
                template(
                    "CREATE UNIQUE INDEX __n ON __s.__t (__c)", n=name, c=f.name, **_t(c.name)
                ),
                _drop_index(name),
            )
        )
    if f.is_relation and f.collection in by_name:
        objs.extend(_relation_objects(c, f, by_name[f.collection]))
    return objs


def _check_object(c: Collection, f: Field, check: exp.Expression) -> Derived:
    name = constraint_name(f.id, "ck")
    create = template(
        "ALTER TABLE __s.__t ADD CONSTRAINT __n CHECK (__e)", n=name, e=check, **_t(c.name)
    )
    drop = template("ALTER TABLE __s.__t DROP CONSTRAINT __n", n=name, **_t(c.name))
    # The signature is the check with the column renamed away, so a rename keeps it.
    signature = render(check_expression(_renamed(f, "_")) or check)
    return _derived(name, c, f.id, f"check values of {c.name}.{f.name}", signature, create, drop)


def _relation_objects(c: Collection, f: Field, target: Collection) -> list[Derived]:
    on_delete = f.on_delete or ("restrict" if f.required else "set_null")
    index_name = constraint_name(f.id, "ix")
    method = "USING GIN " if f.multiple else ""
    index = _derived(
        index_name,
        c,
        f.id,
        f"index {c.name}.{f.name}",
        f"{column_type(f)}",
        template(
            f"CREATE INDEX __n ON __s.__t {method}(__c)", n=index_name, c=f.name, **_t(c.name)
        ),
        _drop_index(index_name),
    )
    summary = f"relation {c.name}.{f.name} -> {target.name} (on delete {on_delete})"
    if not f.multiple:
        name = constraint_name(f.id, "fk")
        action = {"cascade": "CASCADE", "set_null": "SET NULL", "restrict": "RESTRICT"}[on_delete]
        fk = template(
            "ALTER TABLE __s.__t ADD CONSTRAINT __n FOREIGN KEY (__c) REFERENCES __s.__r (id) "
            f"ON DELETE {action}",
            n=name,
            c=f.name,
            r=target.name,
            **_t(c.name),
        )
        drop = template("ALTER TABLE __s.__t DROP CONSTRAINT __n", n=name, **_t(c.name))
        return [index, _derived(name, c, f.id, summary, f"{target.id} {on_delete}", fk, drop)]
    source_trigger = constraint_name(f.id, "rel")
    target_trigger = constraint_name(f.id, "reltd")
    target_ref = render(exp.Table(this=ident(target.name), db=ident(S)))
    source_ref = render(exp.Table(this=ident(c.name), db=ident(S)))
    args = {"a": literal(target_ref), "b": literal(f.name), "k": literal(source_trigger)}
    check = template(
        "CREATE TRIGGER __n BEFORE INSERT OR UPDATE OF __c ON __s.__t FOR EACH ROW "
        "EXECUTE FUNCTION baas.check_relation_ids(__a, __b, __k)",
        n=source_trigger,
        c=f.name,
        **args,
        **_t(c.name),
    )
    cascade = template(
        "CREATE TRIGGER __n AFTER DELETE ON __s.__r FOR EACH ROW "
        "EXECUTE FUNCTION baas.relation_target_deleted(__a, __b, __m, __k)",
        n=target_trigger,
        r=target.name,
        s=S,
        a=literal(source_ref),
        b=literal(f.name),
        m=literal(on_delete),
        k=literal(source_trigger),
    )
    drops = (
        template("DROP TRIGGER __n ON __s.__t", n=source_trigger, **_t(c.name)),
        template("DROP TRIGGER __n ON __s.__t", n=target_trigger, **_t(target.name)),
    )
    # Trigger arguments hold table and column names, so renames rebuild the triggers.
    signature = f"{target_ref} {source_ref} {f.name} {on_delete}"
    triggers = Derived(source_trigger, c.id, f.id, summary, signature, (check, cascade), drops)
    validate = _validate_relation_ids(c, f, target)
    return [index, _with_extra_create(triggers, validate)]


def _validate_relation_ids(c: Collection, f: Field, target: Collection) -> exp.Expression:
    """A query counting rows whose ids are missing from the target (must be 0)."""
    return template(
        "SELECT count(*) FROM __s.__t WHERE NOT __c <@ ARRAY(SELECT id FROM __s.__r)",
        c=f.name,
        r=target.name,
        **_t(c.name),
    )


def _with_extra_create(d: Derived, query: exp.Expression) -> Derived:
    return Derived(d.name, d.host, d.owner, d.summary, d.signature, (*d.create, query), d.drop)


def _index_object(c: Collection, index: Index) -> Derived:
    name = constraint_name(index.id, "uix" if index.unique else "idx")
    fields = {f.name: f for f in c.fields}
    multi = (
        len(index.fields) == 1 and index.fields[0] in fields and fields[index.fields[0]].multiple
    )
    kind = "UNIQUE INDEX" if index.unique else "INDEX"
    stmt = template(
        f"CREATE {kind} __n ON __s.__t {'USING GIN ' if multi else ''}(__x)",
        n=name,
        x="x",
        **_t(c.name),
    )
    stmt.this.args["params"].set(
        "columns", [exp.Ordered(this=column(n), nulls_first=False) for n in index.fields]
    )
    label = ", ".join(index.fields)
    signature = " ".join(
        f"{fields[n].id}:{column_type(fields[n])}" if n in fields else n for n in index.fields
    )
    what = "unique index" if index.unique else "index"
    return _derived(
        name, c, index.id, f"{what} on {c.name} ({label})", signature, stmt, _drop_index(name)
    )


def search_document(c: Collection, alias: str | None = None) -> exp.Expression:
    """The tsvector of a collection's search fields: the same expression for its GIN index and
    for `search=` queries, so PostgreSQL uses the index."""
    parts: list[exp.Expression] = []
    for name in c.search:
        parts.append(exp.Coalesce(this=column(name, alias), expressions=[exp.Literal.string("")]))
    text = parts[0]
    for part in parts[1:]:
        text = exp.DPipe(
            this=exp.DPipe(this=text, expression=exp.Literal.string(" ")), expression=part
        )
    config = exp.Literal.string(c.search_language)  # an untyped literal: PostgreSQL's regconfig
    return exp.Anonymous(this="to_tsvector", expressions=[config, text])


def _search_object(c: Collection) -> Derived:
    name = constraint_name(c.id, "search")
    stmt = template(
        "CREATE INDEX __n ON __s.__t USING GIN (__e)",
        n=name,
        e=exp.Paren(this=search_document(c)),
        **_t(c.name),
    )
    fields = {f.name: f.id for f in c.fields}
    signature = c.search_language + " " + " ".join(fields.get(n, n) for n in c.search)
    summary = f"search index on {c.name} ({', '.join(c.search)}; {c.search_language})"
    return _derived(name, c, c.id, summary, signature, stmt, _drop_index(name))


def _drop_index(name: str) -> exp.Expression:
    return template("DROP INDEX __s.__n", n=name, s=S)


def _derived(
    name: str,
    c: Collection,
    owner: str,
    summary: str,
    signature: str,
    create: exp.Expression,
    drop: exp.Expression,
) -> Derived:
    return Derived(name, c.id, owner, summary, signature, (create,), (drop,))


def check_expression(f: Field) -> exp.Expression | None:
    """The CHECK a field's declared bounds and values imply (NULL always passes), or None."""
    col = column(f.name)
    parts: list[exp.Expression] = []
    spec = TYPES[f.type]
    if f.multiple:
        size: exp.Expression = exp.Anonymous(this="cardinality", expressions=[col.copy()])
        if f.required:
            parts.append(exp.GT(this=size.copy(), expression=literal(0)))
    elif spec.length_bounds:
        size = exp.Anonymous(this="char_length", expressions=[col.copy()])
        if f.required:
            parts.append(exp.NEQ(this=col.copy(), expression=literal("")))
    else:
        size = col.copy()
    if f.type not in ("select", "relation") or f.multiple:
        _bounds(parts, size, f)
    if f.type == "select":
        values = [literal(v) for v in f.values]
        if f.multiple:
            allowed = exp.Cast(
                this=exp.Array(expressions=values),
                to=exp.DataType.build("text[]", dialect="postgres"),
            )
            parts.append(exp.ArrayContainedBy(this=col.copy(), expression=allowed))
        else:
            parts.append(exp.In(this=col.copy(), expressions=values))
    if not parts:
        return None
    result = parts[0]
    for part in parts[1:]:
        result = exp.And(this=result, expression=part)
    return result


def _bounds(parts: list[exp.Expression], size: exp.Expression, f: Field) -> None:
    if f.min is not None:
        parts.append(exp.GTE(this=size.copy(), expression=literal(_number(f.min))))
    if f.max is not None:
        parts.append(exp.LTE(this=size.copy(), expression=literal(_number(f.max))))


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _renamed(f: Field, name: str) -> Field:
    from dataclasses import replace

    return replace(f, name=name)


def _cast(node: exp.Expression, type_sql: str) -> exp.Expression:
    return exp.Cast(this=node, to=exp.DataType.build(type_sql, dialect="postgres"))


def _parse_expr(sql: str) -> exp.Expression:
    node = template(f"SELECT {sql}").expressions[0]
    assert isinstance(node, exp.Expression)
    return node


Render = Callable[[exp.Expression], str]
