"""The JSON Schema for schema files agrees with the real parser (`parse_document`).

Valid documents pass both; each invalid document is a valid one with one mistake, and both reject
it (the parser naming the path of the mistake). What JSON Schema cannot express is listed as
known gaps, which only the server catches.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from baas.schema.document import SchemaError, parse_document, to_document
from baas.schema.jsonschema import schema_file_jsonschema
from baas.schema.yamlio import load_yaml

SCHEMA = schema_file_jsonschema()
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
BASE: dict[str, Any] = {
    "collections": {
        "users": {"fields": {"name": "text"}},
        "posts": {
            "fields": {
                "title": "text",
                "tags": {"type": "select", "values": ["a"], "multiple": True},
            }
        },
    }
}
POST = "collections.posts"


def _field(definition: Any, name: str = "x") -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["collections"]["posts"]["fields"][name] = definition
    return doc


def _posts(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["collections"]["posts"].update(changes)
    return doc


def _collection(name: str, definition: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["collections"][name] = definition
    return doc


def _problems(document: Any) -> list[str]:
    with pytest.raises(SchemaError) as info:
        parse_document(document)
    return info.value.problems


def test_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert json.loads(json.dumps(SCHEMA)) == SCHEMA


# -- valid documents ------------------------------------------------------------------------------

VALID_YAML = {
    "short forms": """
collections:
  posts:
    fields:
      title: text
      email: email
      site: url
      views: integer
      score: number
      done: bool
      at: datetime
      day: date
      meta: json
      cover: file
""",
    "empty collections": "collections: {}\n",
    "no collections": "collections:\n",
    "collection without fields": "collections:\n  empty:\n",
    "fields null": "collections:\n  empty:\n    fields:\n",
    "yaml 1.2 names": """
collections:
  switches:
    fields:
      no: bool
      yes: bool
      off: {type: bool, default: false, nullable: false}
      y: text
""",
    "dates stay strings": """
collections:
  events:
    fields:
      day: {type: date, default: 2026-01-31}
      at: {type: datetime, default: 2026-01-31T12:00:00Z}
      size: {type: number, max: 1e6}
""",
}

VALID: dict[str, Any] = {
    "empty document": {},
    "the base of the invalid cases": BASE,
    "full forms": {
        "collections": {
            "users": {
                "fields": {
                    "name": {
                        "type": "text",
                        "required": True,
                        "min": 1,
                        "max": 100,
                        "pattern": "[A-Za-z ]+",
                        "unique": True,
                        "hidden": False,
                        "nullable": False,
                        "default": "anonymous",
                    },
                    "contact": {"type": "email", "unique": True, "max": 254, "pattern": ".+@.+"},
                    "site": {"type": "url", "default": "https://example.com"},
                    "age": {"type": "integer", "min": 0, "max": 150, "default": 18},
                    "score": {"type": "number", "min": -1.5, "max": 1e6, "default": 0.5},
                    "active": {"type": "bool", "nullable": False, "default": True},
                    "seen": {"type": "datetime", "default": "now", "nullable": False},
                    "born": {"type": "date", "default": "2000-01-01"},
                    "prefs": {"type": "json", "default": {"theme": "dark"}, "unique": False},
                    "secret": {"type": "text", "hidden": True},
                },
            },
            "posts": {
                "fields": {
                    "status": {"type": "select", "values": ["draft", "live"], "default": "draft"},
                    "tags": {
                        "type": "select",
                        "values": ["a", "b", "c"],
                        "multiple": True,
                        "min": 0,
                        "max": 2,
                        "default": ["a"],
                        "required": True,
                    },
                    "author": {
                        "type": "relation",
                        "collection": "users",
                        "required": True,
                        "on_delete": "cascade",
                    },
                    "editor": {"type": "relation", "collection": "users", "on_delete": "set_null"},
                    "readers": {
                        "type": "relation",
                        "collection": "users",
                        "multiple": True,
                        "min": 1,
                        "max": 10,
                        "on_delete": "set_null",
                        "required": True,
                    },
                    "cover": {
                        "type": "file",
                        "max_size": "5MB",
                        "mime_types": ["image/png", "image/*"],
                        "thumbs": ["100x100", "0x200", "300x300t"],
                        "protected": True,
                        "serve_inline": True,
                    },
                    "files": {"type": "file", "multiple": True, "max": 5, "max_size": 1048576},
                    "doc": {"type": "file", "max_size": " 512 KiB "},
                },
                "indexes": [
                    ["status"],
                    ["status", "created"],
                    {"fields": ["author", "status"], "unique": True},
                    {"fields": ["tags"]},
                    {"fields": ["id", "updated"], "unique": False},
                ],
            },
        }
    },
    "renames": {
        "collections": {
            "articles": {
                "renamed_from": "posts",
                "fields": {"headline": {"type": "text", "renamed_from": "title"}},
            }
        }
    },
    "null defaults": _field({"type": "relation", "collection": "users", "default": None}),
    "unique false on a json field": _field({"type": "json", "unique": False}),
    "nullable false on a multiple field": _field(
        {"type": "select", "values": ["a"], "multiple": True, "nullable": False}
    ),
    "required and not nullable": _field({"type": "text", "required": True, "nullable": False}),
}


def _valid_cases() -> list[Any]:
    cases = [pytest.param(doc, id=name) for name, doc in VALID.items()]
    cases += [pytest.param(load_yaml(text), id=name) for name, text in VALID_YAML.items()]
    return cases


@pytest.mark.parametrize("document", _valid_cases())
def test_valid_documents_validate_and_parse(document: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(document)]
    assert errors == []
    schema = parse_document(document)
    canonical = to_document(schema)  # what `baas schema pull` writes is valid too
    assert list(VALIDATOR.iter_errors(canonical)) == []
    assert parse_document(canonical) == schema


# -- invalid documents: both reject ------------------------------------------------------------

X = f"{POST}.fields.x"
INVALID: dict[str, tuple[Any, str]] = {
    "not a mapping": (["posts"], "document"),
    "unknown top-level key": ({**BASE, "version": 1}, "document.version"),
    "collections not a mapping": ({"collections": ["posts"]}, "collections"),
    "collection not a mapping": (_collection("notes", "text"), "collections.notes"),
    "unknown collection key": (_posts(realtime_rules={}), f"{POST}.realtime_rules"),
    "fields not a mapping": (_posts(fields=["title"]), f"{POST}.fields"),
    "uppercase collection name": (_collection("Notes", {}), "collections.Notes"),
    "collection name starts with a digit": (_collection("1notes", {}), "collections.1notes"),
    "reserved collection name": (_collection("select", {}), "collections.select"),
    "pg_ collection name": (_collection("pg_notes", {}), "collections.pg_notes"),
    "system column as a name": (_collection("xmin", {}), "collections.xmin"),
    "name longer than 63 bytes": (_collection("n" * 64, {}), "collections." + "n" * 64),
    "name with a dash": (_collection("my-notes", {}), "collections.my-notes"),
    "uppercase field name": (_field("text", "Title"), f"{POST}.fields.Title"),
    "system field id": (_field("text", "id"), f"{POST}.fields.id"),
    "system field created": (_field("datetime", "created"), f"{POST}.fields.created"),
    "reserved field name": (_field("text", "order"), f"{POST}.fields.order"),
    "unknown option for a type": (_field({"type": "bool", "max": 1}), f"{X}.max"),
    "option of another type": (_field({"type": "text", "values": ["a"]}), f"{X}.values"),
    "made-up option": (_field({"type": "text", "length": 5}), f"{X}.length"),
    "internal id option": (_field({"type": "text", "id": "abc"}), f"{X}.id"),
    "bad type name": (_field({"type": "string"}), f"{X}.type"),
    "bad short form": (_field("string"), f"{X}.type"),
    "type missing": (_field({"required": True}), f"{X}.type"),
    "field not a mapping": (_field(5), X),
    "select without values": (_field({"type": "select"}), f"{X}.values"),
    "select with no values": (_field({"type": "select", "values": []}), f"{X}.values"),
    "select repeating a value": (_field({"type": "select", "values": ["a", "a"]}), f"{X}.values"),
    "select with an empty value": (_field({"type": "select", "values": [""]}), f"{X}.values"),
    "select with a number": (_field({"type": "select", "values": ["a", 1]}), f"{X}.values"),
    "select values not a list": (_field({"type": "select", "values": "a,b"}), f"{X}.values"),
    "relation without collection": (_field({"type": "relation"}), f"{X}.collection"),
    "non-bool required": (_field({"type": "text", "required": "yes"}), f"{X}.required"),
    "numeric required": (_field({"type": "text", "required": 1}), f"{X}.required"),
    "non-bool nullable": (_field({"type": "text", "nullable": "no"}), f"{X}.nullable"),
    "non-bool hidden": (_field({"type": "text", "hidden": None}), f"{X}.hidden"),
    "negative length": (_field({"type": "text", "min": -1}), f"{X}.min"),
    "fractional length": (_field({"type": "text", "max": 2.5}), f"{X}.max"),
    "min as a string": (_field({"type": "integer", "min": "5"}), f"{X}.min"),
    "max as a bool": (_field({"type": "number", "max": True}), f"{X}.max"),
    "fractional item count": (
        _field({"type": "select", "values": ["a"], "multiple": True, "max": 1.5}),
        f"{X}.max",
    ),
    "min on a single select": (_field({"type": "select", "values": ["a"], "min": 1}), X),
    "max on a single relation": (_field({"type": "relation", "collection": "users", "max": 2}), X),
    "unique json": (_field({"type": "json", "unique": True}), f"{X}.unique"),
    "unique file": (_field({"type": "file", "unique": True}), f"{X}.unique"),
    "unique multiple select": (
        _field({"type": "select", "values": ["a"], "multiple": True, "unique": True}),
        f"{X}.unique",
    ),
    "default on a relation": (
        _field({"type": "relation", "collection": "users", "default": "x"}),
        f"{X}.default",
    ),
    "default on a file": (_field({"type": "file", "default": "a.png"}), f"{X}.default"),
    "integer default as text": (_field({"type": "integer", "default": "abc"}), f"{X}.default"),
    "bool default as text": (_field({"type": "bool", "default": "true"}), f"{X}.default"),
    "datetime default as number": (_field({"type": "datetime", "default": 5}), f"{X}.default"),
    "not nullable without default": (_field({"type": "text", "nullable": False}), f"{X}.nullable"),
    "not nullable with a null default": (
        _field({"type": "text", "nullable": False, "default": None}),
        f"{X}.nullable",
    ),
    "unknown on_delete": (
        _field({"type": "relation", "collection": "users", "on_delete": "nothing"}),
        f"{X}.on_delete",
    ),
    "set_null on a required relation": (
        _field(
            {"type": "relation", "collection": "users", "on_delete": "set_null", "required": True}
        ),
        f"{X}.on_delete",
    ),
    "max_size with a made-up unit": (_field({"type": "file", "max_size": "5 parsecs"}), X),
    "max_size zero": (_field({"type": "file", "max_size": 0}), f"{X}.max_size"),
    "max_size zero megabytes": (_field({"type": "file", "max_size": "0MB"}), f"{X}.max_size"),
    "negative max_size": (_field({"type": "file", "max_size": -1}), f"{X}.max_size"),
    "mime type without subtype": (_field({"type": "file", "mime_types": ["image"]}), X),
    "mime types not a list": (_field({"type": "file", "mime_types": "image/png"}), X),
    "thumb too large": (_field({"type": "file", "thumbs": ["12345x1"]}), f"{X}.thumbs"),
    "thumb with a bad mode": (_field({"type": "file", "thumbs": ["100x100z"]}), f"{X}.thumbs"),
    "empty pattern": (_field({"type": "text", "pattern": ""}), f"{X}.pattern"),
    "invalid pattern": (_field({"type": "text", "pattern": "("}), f"{X}.pattern"),
    "pattern not a string": (_field({"type": "text", "pattern": 5}), f"{X}.pattern"),
    "pattern too long": (_field({"type": "text", "pattern": "a" * 1001}), f"{X}.pattern"),
    "field renamed from a bad name": (
        _field({"type": "text", "renamed_from": "Old"}),
        f"{X}.renamed_from",
    ),
    "collection renamed from a reserved word": (
        _posts(renamed_from="select"),
        f"{POST}.renamed_from",
    ),
    "indexes not a list": (_posts(indexes={"by_title": ["title"]}), f"{POST}.indexes"),
    "index with no fields": (_posts(indexes=[[]]), f"{POST}.indexes[0].fields"),
    "index as a string": (_posts(indexes=["title"]), f"{POST}.indexes[0]"),
    "index with an unknown key": (
        _posts(indexes=[{"fields": ["title"], "name": "t"}]),
        f"{POST}.indexes[0].name",
    ),
    "index without fields": (_posts(indexes=[{"unique": True}]), f"{POST}.indexes[0].fields"),
    "index naming a field twice": (_posts(indexes=[["title", "title"]]), f"{POST}.indexes[0]"),
    "index with a non-bool unique": (
        _posts(indexes=[{"fields": ["title"], "unique": "yes"}]),
        f"{POST}.indexes[0].unique",
    ),
    "same index twice": (_posts(indexes=[["title"], ["title"]]), f"{POST}.indexes[1]"),
}


@pytest.mark.parametrize(("document", "path"), list(INVALID.values()), ids=list(INVALID))
def test_invalid_documents_are_rejected_by_both(document: Any, path: str) -> None:
    assert not VALIDATOR.is_valid(document), "the JSON Schema accepts it"
    problems = _problems(document)
    assert any(p.startswith(path) for p in problems), problems
    for problem in problems:
        assert ": " in problem, problem


def test_every_problem_is_reported_at_once() -> None:
    doc = _field({"type": "text", "min": -1, "required": "yes", "colour": "red"})
    doc["collections"]["Bad"] = {}
    problems = _problems(doc)
    assert {p.split(":")[0] for p in problems} == {
        f"{X}.colour",
        f"{X}.required",
        "collections.Bad",
    }
    assert len(list(VALIDATOR.iter_errors(doc))) >= 2


# -- what only the server can tell ------------------------------------------------------------

KNOWN_GAPS: dict[str, tuple[Any, str]] = {
    "relation to a missing collection": (
        _field({"type": "relation", "collection": "comments"}),
        f"{X}.collection",
    ),
    "min greater than max": (_field({"type": "integer", "min": 5, "max": 1}), f"{X}.min"),
    "index on an unknown field": (_posts(indexes=[["body"]]), f"{POST}.indexes[0].fields"),
    "multi-valued field in a compound index": (
        _posts(indexes=[["tags", "title"]]),
        f"{POST}.indexes[0].fields",
    ),
    "default longer than max": (_field({"type": "text", "max": 3, "default": "long"}), f"{X}"),
    "select default not among values": (
        _field({"type": "select", "values": ["a"], "default": "b"}),
        f"{X}.default",
    ),
    "relation named auth": (
        _field({"type": "relation", "collection": "users"}, "auth"),
        f"{POST}.fields.auth",
    ),
    "same index in two forms": (
        _posts(indexes=[["title"], {"fields": ["title"]}]),
        f"{POST}.indexes[1]",
    ),
}


@pytest.mark.parametrize(("document", "path"), list(KNOWN_GAPS.values()), ids=list(KNOWN_GAPS))
def test_known_gaps_are_caught_by_the_server(document: Any, path: str) -> None:
    """Cross-references and value checks JSON Schema cannot express: editors accept these."""
    assert VALIDATOR.is_valid(document)
    problems = _problems(document)
    assert any(p.startswith(path) for p in problems), problems


# -- the parser must never fail in any other way ----------------------------------------------

PARSER_ONLY: dict[str, tuple[Any, str]] = {
    # JSON has no infinity, but YAML does (.inf); the CHECK constraint then fails to apply.
    "infinite max": (_field({"type": "integer", "max": float("inf")}), f"{X}.max"),
    "NaN min": (_field({"type": "number", "min": float("nan")}), f"{X}.min"),
}


@pytest.mark.parametrize(("document", "path"), list(PARSER_ONLY.values()), ids=list(PARSER_ONLY))
def test_parser_rejects_non_finite_bounds(document: Any, path: str) -> None:
    problems = _problems(document)
    assert any(p.startswith(path) for p in problems), problems


@pytest.mark.parametrize(
    ("document", "path"),
    [
        pytest.param(
            _field({"type": "relation", "collection": ["users"]}),
            f"{X}.collection",
            id="relation-collection-a-list",
        ),
        pytest.param(
            _field({"type": "relation", "collection": {"a": 1}}),
            f"{X}.collection",
            id="relation-collection-a-mapping",
        ),
        pytest.param(_field({"type": "file", "max": 3}), X, id="max-on-a-single-file"),
        pytest.param({"collections": []}, "collections", id="collections-empty-list"),
        pytest.param({"collections": False}, "collections", id="collections-false"),
        pytest.param(_posts(fields=[]), f"{POST}.fields", id="fields-empty-list"),
        pytest.param(_posts(fields=0), f"{POST}.fields", id="fields-zero"),
    ],
)
def test_both_reject_malformed_values_cleanly(document: Any, path: str) -> None:
    """Values the JSON Schema rejects must be SchemaErrors from the parser, never accepted
    (an empty list is not 'no collections') nor a crash (TypeError: unhashable)."""
    assert not VALIDATOR.is_valid(document)
    problems = _problems(document)
    assert any(p.startswith(path) for p in problems), problems
