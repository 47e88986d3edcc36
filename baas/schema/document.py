"""The schema document (YAML file, JSON body, stored JSON) <-> the validated `Schema` model.

`parse_document` checks everything a person can get wrong and reports every problem at once, each
with its path (`collections.posts.fields.title.max: ...`); `to_document` writes the canonical form
back (what `baas schema pull` saves), leaving out options that have their default value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from baas.errors import ApiError
from baas.schema import auth_collection as auth
from baas.schema.fields import TYPES, FieldValueError, parse_value
from baas.schema.models import (
    ON_DELETE,
    RULE_OPERATIONS,
    SYSTEM_FIELDS,
    Collection,
    Default,
    Field,
    Index,
    Rules,
    Schema,
)
from baas.schema.names import RECORD_KEYS, name_problem
from baas.schema.push_triggers import parse_push, push_doc

MAX_COLLECTIONS = 1000
MAX_FIELDS = 500  # PostgreSQL allows 1600 columns; leave room for dropped ones
MAX_INDEX_FIELDS = 32
MAX_SELECT_VALUES = 1000
MAX_PATTERN_LENGTH = 1000
MAX_RULE_LENGTH = 4096
SEARCHABLE = ("text", "email", "url")
# PostgreSQL's built-in text search configurations.
SEARCH_LANGUAGES = (
    "simple",
    "arabic",
    "armenian",
    "basque",
    "catalan",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hindi",
    "hungarian",
    "indonesian",
    "irish",
    "italian",
    "lithuanian",
    "nepali",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "serbian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
    "yiddish",
)
_SIZE = re.compile(r"(\d+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)")
_THUMB = re.compile(r"\d{1,4}x\d{1,4}[tbf]?")


class SchemaError(ApiError):
    """The schema document has problems; `problems` lists them all, each with its path."""

    status, code = 400, "invalid_schema"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            f"the schema has {len(problems)} problem(s): {problems[0]}"
            if problems
            else "invalid schema",
            problems=problems,
        )
        self.problems = problems


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


def parse_document(doc: Any, *, stored: bool = False) -> Schema:
    """Validate a schema document and build the model; raise SchemaError listing all problems.

    `stored=True` accepts the internal `id` keys of the document kept in the database.
    """
    problems = _Problems()
    if not isinstance(doc, Mapping):
        raise SchemaError(["document: must be a mapping with a 'collections' key"])
    _unknown_keys(doc, {"collections"}, "document", problems)
    raw = doc.get("collections")
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise SchemaError(["collections: must be a mapping of collection name -> definition"])
    if len(raw) > MAX_COLLECTIONS:
        problems.add("collections", f"at most {MAX_COLLECTIONS} collections")
    names = set(raw) | {auth.AUTH_COLLECTION}
    collections = []
    for name, definition in raw.items():
        path = f"collections.{name}"
        problem = name_problem(name, "collection")
        if problem:
            problems.add(path, problem)
            continue
        system: dict[str, Any] = {}
        if name == auth.AUTH_COLLECTION:
            definition, system = _split_system_fields(definition)
        collection = _collection(name, definition, names, path, problems, stored)
        if collection is not None and name == auth.AUTH_COLLECTION:
            collection = _users(collection, definition, system, path, problems, stored)
        if collection is not None:
            collections.append(collection)
    if not stored and auth.AUTH_COLLECTION not in raw:
        collections.insert(0, auth.default_users())
    if problems.items:
        raise SchemaError(problems.items)
    return Schema(collections=tuple(collections))


def _split_system_fields(definition: Any) -> tuple[Any, dict[str, Any]]:
    """The users definition without its system field entries, and those entries."""
    fields = definition.get("fields") if isinstance(definition, Mapping) else None
    if not isinstance(fields, Mapping) or not auth.SYSTEM_NAMES & set(fields):
        return definition, {}
    system = {k: v for k, v in fields.items() if k in auth.SYSTEM_NAMES}
    rest = {k: v for k, v in fields.items() if k not in auth.SYSTEM_NAMES}
    return {**definition, "fields": rest}, system


def _users(
    c: Collection,
    definition: Any,
    system: dict[str, Any],
    path: str,
    problems: _Problems,
    stored: bool,
) -> Collection:
    """The auth collection: its system fields added (or recognised, when stored)."""
    declared_rules = isinstance(definition, Mapping) and "rules" in definition
    if stored:
        return _stored_users(c, system)
    private: dict[str, bool] = {}
    for name, entry in system.items():
        share = entry.get("private") if isinstance(entry, Mapping) else None
        if name in auth.SHAREABLE and isinstance(share, bool) and set(entry) == {"private"}:
            private[name] = share
            continue
        hint = " (only `private: false` may be given, to show it to other users)"
        problems.add(
            f"{path}.fields.{name}",
            f"{name!r} is a built-in field of users, managed by the auth API: leave it out"
            + (hint if name in auth.SHAREABLE else ""),
        )
    for f in c.fields:
        if f.name in auth.VIEW_KEYS:
            problems.add(
                f"{path}.fields.{f.name}",
                f"{f.name!r} is a key the auth API adds to an account's own view "
                "(/api/auth/me, the admin API): choose another name",
            )
    if c.renamed_from is not None:
        problems.add(f"{path}.renamed_from", "the users collection cannot be renamed")
    return auth.with_built_ins(c, c.rules if declared_rules else None, private)


def _stored_users(c: Collection, system: dict[str, Any]) -> Collection:
    """The stored users collection: the system fields it has, with their ids and `private`
    (stored explicitly; a copy from before `private` existed gets the built-in choice)."""
    ids: dict[str, str] = {}
    private: dict[str, bool] = {}
    for name, entry in system.items():
        if isinstance(entry, Mapping):
            ids[name] = str(entry.get("id") or "")
            if isinstance(entry.get("private"), bool):
                private[name] = entry["private"]
    built_in = tuple(f for f in auth.system_fields(private, ids) if f.name in system)
    return replace(c, fields=(*built_in, *c.fields))


def _collection(
    name: str, definition: Any, names: set[str], path: str, problems: _Problems, stored: bool
) -> Collection | None:
    if definition is None:
        definition = {}
    if not isinstance(definition, Mapping):
        problems.add(path, "must be a mapping with 'fields' (and optionally 'indexes')")
        return None
    allowed = {"fields", "indexes", "renamed_from", "rules", "search", "search_language", "push"}
    allowed |= {"id"} if stored else set()
    _unknown_keys(definition, allowed, path, problems)
    renamed_from = _renamed_from(definition, path, "collection", problems)
    if renamed_from == auth.AUTH_COLLECTION:
        problems.add(f"{path}.renamed_from", "the users collection cannot be renamed")
    raw_fields = definition.get("fields")
    raw_fields = {} if raw_fields is None else raw_fields
    if not isinstance(raw_fields, Mapping):
        problems.add(f"{path}.fields", "must be a mapping of field name -> type or definition")
        return None
    if len(raw_fields) > MAX_FIELDS:
        problems.add(f"{path}.fields", f"at most {MAX_FIELDS} fields")
    fields = []
    for field_name, field_def in raw_fields.items():
        fpath = f"{path}.fields.{field_name}"
        problem = name_problem(field_name, "field")
        if problem is None and field_name in SYSTEM_FIELDS:
            problem = f"{field_name!r} is a system field every collection has"
        if problem is None and field_name in RECORD_KEYS and not stored:
            problem = (
                f"{field_name!r} is a key the API adds to records (expanded relations): "
                "choose another name"
            )
        if problem:
            problems.add(fpath, problem)
            continue
        parsed = _field(field_name, field_def, names, fpath, problems, stored)
        if parsed is not None:
            fields.append(parsed)
    by_name = {f.name: f for f in fields}
    indexes = _indexes(definition.get("indexes"), by_name, f"{path}.indexes", problems, stored)
    return Collection(
        name=name,
        fields=tuple(fields),
        indexes=indexes,
        id=str(definition.get("id") or "") if stored else "",
        renamed_from=renamed_from,
        rules=_rules(definition.get("rules"), f"{path}.rules", problems),
        search=_search(definition.get("search"), by_name, f"{path}.search", problems),
        search_language=_language(definition.get("search_language"), path, problems),
        push=parse_push(
            definition.get("push"), by_name, auth.AUTH_COLLECTION, f"{path}.push", problems
        ),
    )


def _rules(raw: Any, path: str, problems: _Problems) -> Rules:
    """Each operation's rule: absent or null = locked, "" = anyone, else an expression."""
    if raw is None:
        return Rules()
    if not isinstance(raw, Mapping):
        problems.add(path, "must be a mapping of operation (list, view, ...) -> rule")
        return Rules()
    _unknown_keys(raw, set(RULE_OPERATIONS), path, problems)
    values: dict[str, str | None] = {}
    for operation in RULE_OPERATIONS:
        rule = raw.get(operation)
        if rule is not None and (not isinstance(rule, str) or len(rule) > MAX_RULE_LENGTH):
            problems.add(
                f"{path}.{operation}",
                f'must be null (locked), "" (anyone) or an '
                f"expression of at most {MAX_RULE_LENGTH} characters",
            )
            continue
        values[operation] = rule
    return Rules(**values)


def _search(raw: Any, fields: dict[str, Field], path: str, problems: _Problems) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw or not all(isinstance(n, str) for n in raw):
        problems.add(path, "must be a list of text field names")
        return ()
    for name in raw:
        f = fields.get(name)
        if f is None or f.type not in SEARCHABLE or f.multiple or f.hidden:
            problems.add(path, f"{name!r} is not a visible text, email or url field")
    if len(set(raw)) != len(raw):
        problems.add(path, "must not repeat a field")
    return tuple(raw)


def _language(raw: Any, path: str, problems: _Problems) -> str:
    if raw is None:
        return "simple"
    if raw not in SEARCH_LANGUAGES:
        problems.add(f"{path}.search_language", "must be one of: " + ", ".join(SEARCH_LANGUAGES))
        return "simple"
    return str(raw)


def _field(
    name: str, definition: Any, names: set[str], path: str, problems: _Problems, stored: bool
) -> Field | None:
    if isinstance(definition, str):
        definition = {"type": definition}
    if not isinstance(definition, Mapping):
        problems.add(path, "must be a type name or a mapping with 'type'")
        return None
    kind = definition.get("type")
    spec = TYPES.get(kind) if isinstance(kind, str) else None
    if spec is None:
        problems.add(f"{path}.type", "must be one of: " + ", ".join(TYPES))
        return None
    allowed = spec.options if stored else spec.options - {"id"}
    _unknown_keys(definition, allowed, path, problems, hint=f"for type {kind}")
    before = len(problems.items)  # unknown keys aside, are the option values usable?
    values: dict[str, Any] = {"name": name, "type": kind}
    for key in ("required", "unique", "hidden", "multiple", "protected", "serve_inline"):
        if key in definition:
            values[key] = _bool(definition[key], f"{path}.{key}", problems)
    if "nullable" in definition:
        values["nullable"] = _bool(definition["nullable"], f"{path}.nullable", problems)
    for key in ("min", "max"):
        if key in definition:
            values[key] = _number(definition[key], f"{path}.{key}", problems)
    if "pattern" in definition:
        values["pattern"] = _pattern(definition["pattern"], f"{path}.pattern", problems)
    if "values" in definition:
        values["values"] = _select_values(definition["values"], f"{path}.values", problems)
    if "collection" in definition:
        target = definition["collection"]
        if not isinstance(target, str) or target not in names:
            problems.add(f"{path}.collection", f"no collection named {target!r} in this schema")
        values["collection"] = target
    if "on_delete" in definition:
        if definition["on_delete"] not in ON_DELETE:
            problems.add(f"{path}.on_delete", "must be one of: " + ", ".join(ON_DELETE))
        values["on_delete"] = definition["on_delete"]
    if "max_size" in definition:
        values["max_size"] = _size(definition["max_size"], f"{path}.max_size", problems)
    if "mime_types" in definition:
        values["mime_types"] = _strings(
            definition["mime_types"],
            _MIME,
            f"{path}.mime_types",
            problems,
            "a MIME type such as image/png or image/*",
        )
    if "thumbs" in definition:
        values["thumbs"] = _strings(
            definition["thumbs"],
            _THUMB,
            f"{path}.thumbs",
            problems,
            "a size such as 100x100, 0x200 or 300x300t",
        )
    if stored and "id" in definition:
        values["id"] = str(definition["id"])
    values["renamed_from"] = _renamed_from(definition, path, "field", problems)
    if len(problems.items) > before:
        return None
    field = Field(**values)
    if "default" in definition:
        field = _with_default(field, definition["default"], path, problems)
    _check_field(field, path, problems)
    return field


def _check_field(f: Field, path: str, problems: _Problems) -> None:
    spec = TYPES[f.type]
    if f.type == "select" and not f.values:
        problems.add(f"{path}.values", "a select field needs a list of allowed values")
    if f.type == "relation":
        if not f.collection:
            problems.add(f"{path}.collection", "a relation field needs the target collection")
        if f.on_delete == "set_null" and f.required and not f.multiple:
            problems.add(f"{path}.on_delete", "set_null cannot apply to a required field")
    if f.min is not None and f.max is not None and f.min > f.max:
        problems.add(f"{path}.min", "must not be greater than max")
    bounds_count = spec.length_bounds or f.multiple
    if bounds_count:
        for key in ("min", "max"):
            value = getattr(f, key)
            if value is not None and (value < 0 or not float(value).is_integer()):
                problems.add(f"{path}.{key}", "must be a whole number of at least 0")
    elif (f.min is not None or f.max is not None) and f.type in ("select", "relation", "file"):
        problems.add(path, "min/max count items, so they need multiple: true")
    if f.unique and (f.multiple or not spec.can_unique):
        problems.add(
            f"{path}.unique",
            f"a {'multiple ' if f.multiple else ''}{f.type} field cannot be unique",
        )
    if f.default is not None and not spec.can_default:
        problems.add(f"{path}.default", f"a {f.type} field cannot have a default")
    if not f.nullable and not f.required and f.default is None and not f.multiple:
        problems.add(f"{path}.nullable", "nullable: false needs a default (or required: true)")
    if f.name in ("auth", "body") and f.type in ("relation", "json"):
        problems.add(path, f"a {f.type} field cannot be named {f.name!r} (rules use {f.name}.*)")


def _with_default(f: Field, raw: Any, path: str, problems: _Problems) -> Field:
    if raw is None:
        return f
    if raw == "now" and f.type in ("datetime", "date"):
        return _replace(f, default=Default("now", now=True))
    try:
        value = parse_value(f, raw)
    except FieldValueError as exc:
        problems.add(f"{path}.default", exc.message)
        return f
    return _replace(f, default=Default(_jsonable(value)))


def _jsonable(value: Any) -> Any:
    """Defaults are kept as the JSON values the document holds (dates as ISO strings)."""
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _replace(f: Field, **changes: Any) -> Field:
    return replace(f, **changes)


def _indexes(
    raw: Any, fields: dict[str, Field], path: str, problems: _Problems, stored: bool
) -> tuple[Index, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add(path, "must be a list of indexes")
        return ()
    out: list[Index] = []
    seen: set[tuple[tuple[str, ...], bool]] = set()
    for i, item in enumerate(raw):
        ipath = f"{path}[{i}]"
        if isinstance(item, list):
            item = {"fields": item}
        if not isinstance(item, Mapping):
            problems.add(ipath, "must be a list of field names or a mapping with 'fields'")
            continue
        _unknown_keys(item, {"fields", "unique"} | ({"id"} if stored else set()), ipath, problems)
        names = item.get("fields")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            problems.add(f"{ipath}.fields", "must be a non-empty list of field names")
            continue
        if len(names) > MAX_INDEX_FIELDS or len(set(names)) != len(names):
            problems.add(f"{ipath}.fields", f"must name 1-{MAX_INDEX_FIELDS} distinct fields")
            continue
        for n in names:
            if n not in fields and n not in SYSTEM_FIELDS:
                problems.add(f"{ipath}.fields", f"no field named {n!r}")
            elif n in fields and fields[n].multiple and len(names) > 1:
                problems.add(f"{ipath}.fields", f"multi-valued {n!r} can only be indexed alone")
        unique = _bool(item.get("unique", False), f"{ipath}.unique", problems)
        key = (tuple(names), unique)
        if key in seen:
            problems.add(ipath, "duplicates another index")
        seen.add(key)
        index_id = str(item.get("id") or "") if stored else ""
        out.append(Index(fields=tuple(names), unique=unique, id=index_id))
    return tuple(out)


def _unknown_keys(
    mapping: Mapping[Any, Any],
    allowed: set[str] | frozenset[str],
    path: str,
    problems: _Problems,
    hint: str = "",
) -> None:
    for key in mapping:
        if key not in allowed:
            where = f" {hint}" if hint else ""
            problems.add(
                f"{path}.{key}",
                f"unknown option{where}; allowed: " + ", ".join(sorted(allowed - {"id"})),
            )


def _renamed_from(
    definition: Mapping[str, Any], path: str, kind: str, problems: _Problems
) -> str | None:
    if "renamed_from" not in definition:
        return None
    old = definition["renamed_from"]
    problem = name_problem(old, kind)
    if problem:
        problems.add(f"{path}.renamed_from", problem)
        return None
    return str(old)


def _bool(value: Any, path: str, problems: _Problems) -> bool:
    if not isinstance(value, bool):
        problems.add(path, "must be true or false")
        return False
    return value


def _number(value: Any, path: str, problems: _Problems) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.add(path, "must be a finite number")
        return None
    return value


def _pattern(value: Any, path: str, problems: _Problems) -> str | None:
    if not isinstance(value, str) or not value or len(value) > MAX_PATTERN_LENGTH:
        problems.add(path, f"must be a regular expression of 1-{MAX_PATTERN_LENGTH} characters")
        return None
    try:
        re.compile(value)
    except re.error as exc:
        problems.add(path, f"is not a valid regular expression: {exc}")
        return None
    return value


def _select_values(value: Any, path: str, problems: _Problems) -> tuple[str, ...]:
    ok = (
        isinstance(value, list)
        and 0 < len(value) <= MAX_SELECT_VALUES
        and all(isinstance(v, str) and v and len(v) <= 255 and "\x00" not in v for v in value)
    )
    if not ok:
        problems.add(path, f"must be a list of 1-{MAX_SELECT_VALUES} non-empty strings")
        return ()
    if len(set(value)) != len(value):
        problems.add(path, "must not repeat a value")
    return tuple(value)


def _size(value: Any, path: str, problems: _Problems) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or int(match[1]) == 0:
        problems.add(path, "must be a size in bytes or a string such as 5MB or 512KiB")
        return None
    return int(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()]


def _strings(
    value: Any, pattern: re.Pattern[str], path: str, problems: _Problems, what: str
) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and pattern.fullmatch(v) for v in value
    ):
        problems.add(path, f"must be a list, each item {what}")
        return ()
    return tuple(value)


# -- writing ------------------------------------------------------------------------------------

_FIELD_DEFAULTS = Field(name="", type="")


def to_document(
    schema: Schema, *, with_ids: bool = False, always_users: bool = False
) -> dict[str, Any]:
    """The canonical document for `schema` (ids included for the stored copy). The file form
    leaves out what is built in: the system fields of `users`, and `users` itself when the app
    changed nothing of it (unless `always_users`: the admin API shows it)."""
    out = {}
    for c in schema.collections:
        untouched = c.name == auth.AUTH_COLLECTION and _untouched_users(c)
        if untouched and not with_ids and not always_users:
            continue
        out[c.name] = _collection_doc(c, with_ids)
    return {"collections": out}


def _untouched_users(c: Collection) -> bool:
    return (
        not auth.declared_fields(c)
        and not auth.shared_choices(c)
        and not c.indexes
        and not c.search
        and c.rules == auth.DEFAULT_RULES
    )


def _collection_doc(c: Collection, with_ids: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if with_ids:
        doc["id"] = c.id
    users = c.name == auth.AUTH_COLLECTION
    fields = auth.declared_fields(c) if users and not with_ids else c.fields
    doc["fields"] = {f.name: _field_doc(f, with_ids) for f in fields}
    if users and not with_ids:
        shared = {name: {"private": value} for name, value in auth.shared_choices(c).items()}
        doc["fields"] = {**shared, **doc["fields"]}
    if c.indexes:
        doc["indexes"] = [_index_doc(i, with_ids) for i in c.indexes]
    if c.search:
        doc["search"] = list(c.search)
        if c.search_language != "simple":
            doc["search_language"] = c.search_language
    if c.push:
        doc["push"] = push_doc(c.push)
    rules = {op: c.rules.for_operation(op) for op in RULE_OPERATIONS}
    if users or any(rule is not None for rule in rules.values()):
        doc["rules"] = rules  # null is written out: "locked" is a decision worth seeing
    return doc


def _field_doc(f: Field, with_ids: bool) -> Any:
    doc: dict[str, Any] = {"type": f.type}
    if with_ids:
        doc["id"] = f.id
    for key in (
        "required",
        "nullable",
        "unique",
        "hidden",
        "multiple",
        "min",
        "max",
        "pattern",
        "collection",
        "on_delete",
        "max_size",
        "protected",
        "serve_inline",
    ):
        value = getattr(f, key)
        if value != getattr(_FIELD_DEFAULTS, key):
            doc[key] = _plain_number(value)
    for key in ("values", "mime_types", "thumbs"):
        if getattr(f, key):
            doc[key] = list(getattr(f, key))
    if f.default is not None:
        doc["default"] = _plain_number(f.default.value)
    if f.private or (f.system and f.name in auth.SHAREABLE):
        doc["private"] = f.private  # stored explicitly: absent means the built-in choice
    if len(doc) == 1:
        return f.type
    return doc


def _index_doc(i: Index, with_ids: bool) -> Any:
    doc: dict[str, Any] = {"fields": list(i.fields)}
    if i.unique:
        doc["unique"] = True
    if with_ids:
        doc["id"] = i.id
    return doc if len(doc) > 1 else list(i.fields)


def _plain_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
