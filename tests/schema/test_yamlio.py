"""Schema files as YAML: YAML 1.2 scalars, duplicate keys and syntax errors reported with their
line, and dump -> load round trips that keep declaration order."""

from __future__ import annotations

import re
from typing import Any

import pytest

from baas.schema.document import SchemaError, parse_document, to_document
from baas.schema.yamlio import HEADER, dump_yaml, load_yaml, rewrite_yaml


def _problem(text: str) -> str:
    with pytest.raises(SchemaError) as info:
        load_yaml(text)
    (problem,) = info.value.problems
    return problem


def test_yaml_11_booleans_stay_strings() -> None:
    doc = load_yaml(
        "collections:\n"
        "  switches:\n"
        "    fields:\n"
        "      on: bool\n"
        "      no: bool\n"
        "      yes: text\n"
        "      off: {type: bool, default: false, nullable: false}\n"
        "      y: {type: bool, required: true}\n"
    )
    fields = doc["collections"]["switches"]["fields"]
    assert list(fields) == ["on", "no", "yes", "off", "y"]
    assert fields["off"] == {"type": "bool", "default": False, "nullable": False}
    assert fields["y"]["required"] is True


@pytest.mark.parametrize("text", ["true", "True", "TRUE", "false", "False", "FALSE"])
def test_yaml_12_booleans(text: str) -> None:
    assert load_yaml(f"a: {text}") == {"a": text.lower() == "true"}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),
        ("No", "No"),
        ("on", "on"),
        ("OFF", "OFF"),
        ("2026-01-31", "2026-01-31"),  # a date default stays the string the parser expects
        ("2026-01-31T12:00:00Z", "2026-01-31T12:00:00Z"),
        ("1:30", "1:30"),  # not sexagesimal 90
        ("1_000", "1_000"),
        ("0755", 755),  # not octal
        ("0o17", 15),
        ("0x1F", 31),
        ("-12", -12),
        ("1e6", 1e6),
        ("2.5", 2.5),
        (".inf", float("inf")),
        ("~", None),
        ("null", None),
    ],
)
def test_yaml_12_scalars(text: str, value: Any) -> None:
    loaded = load_yaml(f"a: {text}")["a"]
    assert loaded == value
    assert type(loaded) is type(value)


def test_yes_as_a_value_is_not_a_boolean() -> None:
    doc = load_yaml(
        "collections:\n  posts:\n    fields:\n      title: {type: text, required: yes}\n"
    )
    with pytest.raises(SchemaError) as info:
        parse_document(doc)
    assert info.value.problems == ["collections.posts.fields.title.required: must be true or false"]


def test_dates_parse_as_date_defaults() -> None:
    doc = load_yaml(
        "collections:\n"
        "  events:\n"
        "    fields:\n"
        "      day: {type: date, default: 2026-01-31}\n"
        "      at: {type: datetime, default: 2026-01-31T12:00:00Z}\n"
    )
    schema = parse_document(doc)
    events = schema.collection("events")
    assert events is not None
    assert [f.default.value for f in events.fields if f.default] == [
        "2026-01-31",
        "2026-01-31T12:00:00+00:00",
    ]


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("collections:\n  posts:\n    fields:\n      title: text\n      title: bool\n", 5, "title"),
        ("collections:\n  posts: {}\n  users: {}\n  posts: {}\n", 4, "posts"),
        ("collections: {}\ncollections: {}\n", 2, "collections"),
        ("a: {b: 1, b: 2}\n", 1, "b"),
    ],
)
def test_duplicate_keys_name_the_line(text: str, line: int, key: str) -> None:
    assert _problem(text) == f"line {line}: {key!r} is defined twice in the same mapping"


def test_same_key_in_different_mappings_is_fine() -> None:
    doc = load_yaml("collections:\n  a: {fields: {title: text}}\n  b: {fields: {title: text}}\n")
    assert set(doc["collections"]) == {"a", "b"}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("collections:\n  posts: [\n", "line 3, column 1"),
        ("collections:\n  posts:\n    fields: {title: text\n", "line 4, column 1"),
        ("collections:\n\tposts: {}\n", "line 2, column 1"),
        ("a: b\n  c: d\n", "line 2, column 4"),
        ("a: 1\n---\nb: 2\n", "line 2, column 1"),
        ("? [a, b]\n: 1\n", "line 1, column 3"),  # a list cannot be a key
        ("a: *nowhere\n", "line 1, column 4"),
    ],
)
def test_malformed_yaml_has_line_and_column(text: str, where: str) -> None:
    problem = _problem(text)
    assert problem.startswith(f"{where}: not valid YAML: "), problem


def test_empty_file_is_none() -> None:
    assert load_yaml("") is None
    assert load_yaml("# only a comment\n") is None


DOCUMENT: dict[str, Any] = {
    "collections": {
        "zebras": {
            "fields": {
                "title": {"type": "text", "required": True, "max": 200},
                "off": "bool",
                "body": "text",
                "status": {"type": "select", "values": ["yes", "no", "on", "1e3", "2026-01-31"]},
                "labels": {
                    "type": "select",
                    "values": ["null", "~", "true", "0x1F", "1:30", "a b", "x, y", "é"],
                    "multiple": True,
                },
                "score": {"type": "number", "min": -1.5, "max": 1e20, "default": 0.25},
                "views": {"type": "integer", "min": 0, "default": 0},
                "day": {"type": "date", "default": "2026-01-31"},
                "meta": {"type": "json", "default": {"b": [1, "two"], "a": None, "yes": False}},
                "note": {"type": "text", "default": "multi\nline: text # not a comment"},
            },
            "indexes": [["title", "created"], {"fields": ["status"], "unique": True}],
        },
        "apples": {"renamed_from": "pears", "fields": {"name": "text"}},
        "empty": {"fields": {}},
    }
}


def test_dump_load_round_trip_keeps_order_and_values() -> None:
    text = dump_yaml(DOCUMENT)
    assert text.startswith(HEADER)
    loaded = load_yaml(text)
    assert loaded == DOCUMENT
    assert list(loaded["collections"]) == ["zebras", "apples", "empty"]
    assert list(loaded["collections"]["zebras"]["fields"]) == list(
        DOCUMENT["collections"]["zebras"]["fields"]
    )
    assert list(loaded["collections"]["zebras"]["fields"]["meta"]["default"]) == ["b", "a", "yes"]


def test_short_lists_are_written_inline() -> None:
    text = dump_yaml({"collections": {"p": {"fields": {"t": "text"}, "indexes": [["t", "id"]]}}})
    assert "- [t, id]" in text


def test_canonical_document_round_trips_through_yaml() -> None:
    schema = parse_document(DOCUMENT)
    canonical = to_document(schema)
    again = load_yaml(dump_yaml(canonical))
    assert again == canonical
    assert parse_document(again) == schema


def test_dumped_text_has_no_yaml_tags() -> None:
    text = dump_yaml(DOCUMENT)
    assert "!!" not in text
    assert re.search(r"^collections:$", text, re.MULTILINE)


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['true']\n",
        "a: !!python/name:os.system\n",
        "a: &x {b: *x}\n",  # a mapping that contains itself
    ],
)
def test_unsafe_or_recursive_yaml_is_rejected(text: str) -> None:
    assert "not valid YAML" in _problem(text)


WRITTEN = """\
# My app
collections:
  # Shown on the front page
  posts:
    fields:
      title: {type: text, required: true}   # short
      # body: text
  # Labels
  tags:
    fields:
      name: text

# end of file
"""
POSTS = {"fields": {"title": {"type": "text", "required": True}}}


def test_rewrite_keeps_the_text_of_unchanged_collections() -> None:
    comments = {"fields": {"text": {"type": "text"}}}
    document = {"collections": {"posts": POSTS, "comments": comments}}
    text, kept = rewrite_yaml(WRITTEN, document)
    assert kept == ("posts",)
    assert text == (
        "# My app\n"
        "collections:\n"
        "  # Shown on the front page\n"
        "  posts:\n"
        "    fields:\n"
        "      title: {type: text, required: true}   # short\n"
        "      # body: text\n"
        "  comments:\n"
        "    fields:\n"
        "      text:\n"
        "        type: text\n"
        "\n"
        "# end of file\n"
    )
    assert parse_document(load_yaml(text)) == parse_document(document)


def test_rewrite_of_an_unchanged_file_is_the_same_text() -> None:
    document = {"collections": {"posts": POSTS, "tags": {"fields": {"name": "text"}}}}
    assert rewrite_yaml(WRITTEN, document) == (WRITTEN, ("posts", "tags"))


@pytest.mark.parametrize(
    "old",
    [
        "collections: {posts: {fields: {title: {type: text, required: true}}}}\n",
        "collections:\n  posts: [\n",
        "collections:\n  posts:\n    fields:\n      title: {type: nope}\n",
        "",
    ],
)
def test_rewrite_replaces_what_it_cannot_follow(old: str) -> None:
    document = {"collections": {"posts": POSTS}}
    assert rewrite_yaml(old, document) == (dump_yaml(document), ())
