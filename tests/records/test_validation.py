"""Record bodies against every field type: accepted values come back normalised, refused values
are one 400 `validation_failed` naming each field with its stable code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.conftest import apply_schema
from tests.records.scenarios import ABSENT, Case, Ref, cases, error, run

SCHEMA = {
    "collections": {
        "people": {"fields": {"name": "text"}},
        "things": {
            "fields": {
                "name": {"type": "text", "required": True},
                "title": {"type": "text", "min": 2, "max": 5, "pattern": "[a-z]+"},
                "email": "email",
                "site": "url",
                "count": {"type": "integer", "min": -5, "max": 100},
                "big": "integer",
                "score": {"type": "number", "min": 0, "max": 10},
                "real": "number",
                "flag": "bool",
                "at": "datetime",
                "day": "date",
                "meta": "json",
                "status": {"type": "select", "values": ["draft", "published"]},
                "tags": {"type": "select", "values": ["a", "b", "c", "d"], "multiple": True, "max": 3},
                "owner": {"type": "relation", "collection": "people"},
                "friends": {"type": "relation", "collection": "people", "multiple": True},
                "avatar": "file",
                "secret": {"type": "text", "hidden": True},
                "stamp": {"type": "datetime", "default": "now"},
                "level": {"type": "integer", "nullable": False, "default": 1},
                "kind": {"type": "select", "values": ["x", "y"], "default": "x"},
                "prefs": {"type": "json", "default": {"theme": "dark"}},
            }
        },
        "strict": {
            "fields": {
                "name": {"type": "text", "required": True},
                "n": {"type": "integer", "required": True},
                "who": {"type": "relation", "collection": "people", "required": True},
                "labels": {"type": "select", "values": ["x", "y"], "multiple": True, "required": True},
            }
        },
    }
}  # fmt: skip
THINGS = "/api/collections/things/records"
MISSING = "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b"


def nested(depth: int) -> Any:
    """A JSON value whose innermost scalar sits `depth` containers deep."""
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def ok(field: str, value: Any, returned: Any = None) -> Case:
    """A create that accepts `value` for `field` and returns it (or `returned`)."""
    back = value if returned is None else returned
    return Case(
        f"{field} accepts {value!r}"[:80],
        "POST",
        THINGS,
        {"name": "n", field: value},
        201,
        {field: back},
    )


def bad(field: str, value: Any, code: str, status: int = 400) -> Case:
    """A create refused with `code` for `field`."""
    name = f"{field} refuses {value!r}"[:80]
    return Case(
        name,
        "POST",
        THINGS,
        {"name": "n", field: value},
        status,
        error("validation_failed", **{field: code}),
    )


def patch_bad(field: str, value: Any, code: str) -> Case:
    name = f"patch {field} refuses {value!r}"[:80]
    return Case(
        name,
        "PATCH",
        THINGS + "/{t1}",
        {field: value},
        400,
        error("validation_failed", **{field: code}),
    )


CREATES = [
    # text: length bounds, pattern, type, NUL, required means non-empty
    ok("title", "abc"),
    ok("title", None),
    bad("title", "a", "too_short"),
    bad("title", "abcdef", "too_long"),
    bad("title", "ab1", "pattern_mismatch"),
    bad("title", "AB", "pattern_mismatch"),
    bad("title", 5, "invalid_type"),
    bad("title", ["ab"], "invalid_type"),
    bad("title", "a\x00b", "invalid_value"),
    bad("name", "", "required"),
    bad("name", None, "required"),
    ok("name", "é ✓ 😀"),
    bad("name", "nul\x00", "invalid_value"),
    # email and url
    ok("email", "someone@example.com"),
    ok("email", ""),
    bad("email", "nope", "invalid_email"),
    bad("email", "a b@example.com", "invalid_email"),
    bad("email", "x" * 250 + "@example.com", "invalid_email"),
    ok("site", "https://example.com/a?b=c"),
    bad("site", "ftp://example.com", "invalid_url"),
    bad("site", "javascript:alert(1)", "invalid_url"),
    bad("site", "http://exa mple.com", "invalid_url"),
    bad("site", "http://", "invalid_url"),
    # integer: whole numbers in 64 bits within the field's bounds
    ok("count", 42),
    ok("count", 5.0, 5),
    ok("count", -5),
    bad("count", 1.5, "invalid_type"),
    bad("count", True, "invalid_type"),
    bad("count", "5", "invalid_type"),
    bad("count", 101, "too_large"),
    bad("count", -6, "too_small"),
    ok("big", 2**63 - 1),
    ok("big", -(2**63)),
    bad("big", 2**63, "out_of_range"),
    bad("big", 2**64, "out_of_range"),
    bad("big", 1e300, "out_of_range"),
    # number
    ok("score", 2.5),
    ok("score", 10, 10.0),
    ok("score", 0),
    bad("score", 10.01, "too_large"),
    bad("score", -0.1, "too_small"),
    bad("score", False, "invalid_type"),
    bad("score", "1", "invalid_type"),
    # bool
    ok("flag", True),
    ok("flag", False),
    bad("flag", 1, "invalid_type"),
    bad("flag", "true", "invalid_type"),
    # datetime: any ISO 8601 form, stored and returned in UTC
    ok("at", "2026-01-31T12:00:00Z"),
    ok("at", "2026-01-31T14:30:00+02:30", "2026-01-31T12:00:00Z"),
    ok("at", "2026-01-31T07:00:00-05:00", "2026-01-31T12:00:00Z"),
    ok("at", "2026-01-31T12:00:00", "2026-01-31T12:00:00Z"),
    ok("at", "2026-01-31T12:00:00.123456Z"),
    ok("at", "2026-01-31", "2026-01-31T00:00:00Z"),
    bad("at", "2026-02-30T00:00:00Z", "invalid_datetime"),
    bad("at", "yesterday", "invalid_datetime"),
    bad("at", "2026-01-31T25:00:00Z", "invalid_datetime"),
    bad("at", 1700000000, "invalid_type"),
    bad("at", "0001-01-01T00:00:00+01:00", "out_of_range"),
    bad("at", "9999-12-31T23:59:59-01:00", "out_of_range"),
    bad("at", "0001-01-01T00:00:00Z", "out_of_range"),
    bad("at", "9999-12-31T23:59:59.999999Z", "out_of_range"),
    ok("at", "0001-01-01T00:00:01Z"),
    ok("at", "9999-12-31T23:59:59Z"),
    bad("at", "2026-01-31T12:00:00Z" * 3, "invalid_type"),
    # date
    ok("day", "2026-01-31"),
    ok("day", "2024-02-29"),
    bad("day", "2026-13-01", "invalid_date"),
    bad("day", "2023-02-29", "invalid_date"),
    bad("day", "2026-01-31T00:00:00", "invalid_type"),
    bad("day", 20260131, "invalid_type"),
    # json: any JSON, no NUL characters, bounded depth
    ok("meta", {"a": [1, {"b": None, "c": "x"}], "d": 1.5, "e": True}),
    ok("meta", [1, "two", None]),
    ok("meta", "just a string"),
    ok("meta", 0),
    ok("meta", False),
    ok("meta", None),
    ok("meta", {}),
    ok("meta", nested(64)),
    bad("meta", nested(65), "too_deep"),
    bad("meta", {"a": "x\x00y"}, "invalid_value"),
    bad("meta", {"k\x00": 1}, "invalid_value"),
    bad("meta", ["\x00"], "invalid_value"),
    # select, single and multiple
    ok("status", "draft"),
    bad("status", "nope", "invalid_choice"),
    bad("status", "Draft", "invalid_choice"),
    bad("status", 1, "invalid_type"),
    bad("status", ["draft"], "invalid_type"),
    ok("tags", ["a", "c"]),
    ok("tags", []),
    ok("tags", None, []),
    bad("tags", ["a", "a"], "duplicate_value"),
    bad("tags", ["a", "b", "c", "d"], "too_many"),
    bad("tags", ["z"], "invalid_choice"),
    bad("tags", "a", "invalid_type"),
    bad("tags", [1], "invalid_type"),
    # relations, single and multiple
    ok("owner", Ref("p1")),
    ok("owner", None),
    bad("owner", "not-a-uuid", "invalid_id"),
    bad("owner", 5, "invalid_id"),
    bad("owner", MISSING, "relation_not_found"),
    ok("friends", [Ref("p1"), Ref("p2")]),
    ok("friends", None, []),
    bad("friends", [MISSING], "relation_not_found"),
    bad("friends", [Ref("p1"), MISSING], "relation_not_found"),
    bad("friends", ["x"], "invalid_id"),
    bad("friends", [Ref("p1"), Ref("p1")], "duplicate_value"),
    bad("friends", Ref("p1"), "invalid_type"),
    # files are uploaded, not written as values
    bad("avatar", "photo.png", "file_not_found"),
    # nullable: false with a default, and server-set fields
    bad("level", None, "not_nullable"),
    ok("level", 3),
    bad("created", "2026-01-01T00:00:00Z", "read_only"),
    bad("updated", "2026-01-01T00:00:00Z", "read_only"),
    bad("nope", 1, "unknown_field"),
    bad("Name", "n", "unknown_field"),
    ok("secret", "s3cret", ABSENT),
]

UPDATES = [
    patch_bad("level", None, "not_nullable"),
    patch_bad("name", "", "required"),
    patch_bad("name", None, "required"),
    patch_bad("tags", ["b", "b"], "duplicate_value"),
    patch_bad("owner", MISSING, "relation_not_found"),
    patch_bad("friends", [MISSING], "relation_not_found"),
    patch_bad("avatar", "x.png", "file_not_found"),
    patch_bad("updated", "2026-01-01T00:00:00Z", "read_only"),
    patch_bad("nope", 1, "unknown_field"),
    patch_bad("count", 1000, "too_large"),
    Case("patch accepts a relation", "PATCH", THINGS + "/{t1}", {"owner": Ref("p2")}, 200, {"owner": Ref("p2")}),
    Case("patch clears a multi relation", "PATCH", THINGS + "/{t1}", {"friends": None}, 200, {"friends": []}),
    Case("patch sets a hidden field", "PATCH", THINGS + "/{t1}", {"secret": "x"}, 200, {"secret": ABSENT}),
]  # fmt: skip


def raw(field: str, text: str, code: str | None = None, back: Any = None) -> Case:
    """A create whose body is JSON text as a client wrote it (numbers exactly as written):
    accepted and returned as `back`, or refused with `code` for `field`."""
    body = f'{{"name": "n", "{field}": {text}}}'.encode()
    name = f"{field} {'refuses' if code else 'accepts'} {text}"[:80]
    if code is None:
        return Case(name, "POST", THINGS, body, 201, {field: back})
    return Case(name, "POST", THINGS, body, 400, error("validation_failed", **{field: code}))


NESTED_64 = "[" * 64 + "]" * 64
NUMBERS = [
    # integers: exactly 64 bits, never rounded nor clamped into range
    raw("big", "-9223372036854775808", back=-(2**63)),
    raw("big", "9223372036854775807", back=2**63 - 1),
    raw("big", "-9223372036854775809", "out_of_range"),
    raw("big", "9223372036854775808", "out_of_range"),
    raw("big", "18446744073709551616", "out_of_range"),
    raw("big", "-123456789012345678901234567890", "out_of_range"),
    raw("big", "1e15", back=10**15),
    raw("big", "9007199254740992.0", back=2**53),
    raw("big", "9.3e18", "out_of_range"),
    raw("big", "9223372036854775807.0", "out_of_range"),
    raw("big", "-9223372036854775809.0", "out_of_range"),
    raw("big", "1e19", "out_of_range"),
    # numbers: every finite double, nothing else
    raw("real", "1e308", back=1e308),
    raw("real", "-1.7976931348623157e308", back=-1.7976931348623157e308),
    raw("real", "5e-324", back=5e-324),
    raw("real", "12345678901234567890", back=12345678901234567890.0),
    raw("real", "1" + "0" * 308, back=1e308),
    raw("real", "1" + "0" * 309, "out_of_range"),
    raw("real", "-1" + "0" * 400, "out_of_range"),
    raw("real", "1e309", "out_of_range"),
    raw("real", "-2e400", "out_of_range"),
    raw("big", "1e400", "out_of_range"),
    raw("meta", "[1, 1e400]", "out_of_range"),
    # json: integers kept exact (within 64 bits), nesting counted from the outermost
    raw("meta", "9007199254740993", back=9007199254740993),
    raw("meta", '{"a": [9223372036854775807, -9223372036854775808]}', back={"a": [2**63 - 1, -(2**63)]}),
    raw("meta", "[18446744073709551615]", "out_of_range"),
    raw("meta", '{"a": 18446744073709551616}', "out_of_range"),
    raw("meta", "-9223372036854775809", "out_of_range"),
    raw("meta", "[1e308, -2.5]", back=[1e308, -2.5]),
    raw("meta", NESTED_64, back=orjson.loads(NESTED_64)),
    raw("meta", "[" * 65 + "]" * 65, "too_deep"),
    raw("meta", '{"a":' * 65 + "1" + "}" * 65, "too_deep"),
    raw("meta", '{"a":' * 64 + "[]" + "}" * 64, "too_deep"),
    raw("meta", '{"a":' * 63 + "[1]" + "}" * 63, back=orjson.loads('{"a":' * 63 + "[1]" + "}" * 63)),
]  # fmt: skip
NOT_JSON = [
    Case("real refuses NaN", "POST", THINGS, b'{"name": "n", "real": NaN}', 400, error("malformed_json")),
    Case("real refuses -Infinity", "POST", THINGS, b'{"name": "n", "real": -Infinity}', 400, error("malformed_json")),
    Case("a 5000-digit integer", "POST", THINGS, b'{"name": "n", "big": 1' + b"0" * 5000 + b"}", 400, error("malformed_json")),
]  # fmt: skip


@cases(NUMBERS)
async def test_numbers_are_stored_exactly_or_refused(module_admin, seeded, case):
    response = await run(module_admin, case, **seeded)
    if response.status_code == 201:
        record = response.json()
        got = await module_admin.get(f"{THINGS}/{record['id']}")
        assert got.json() == record  # read back as written, not as a float
        listed = await module_admin.get(THINGS, params={"filter": f"id = '{record['id']}'"})
        assert listed.json()["items"] == [record]


@cases(NOT_JSON)
async def test_non_finite_numbers_are_not_json(module_admin, seeded, case):
    await run(module_admin, case, **seeded)


@pytest.fixture(scope="module")
async def seeded(module_admin):
    await apply_schema(module_admin, SCHEMA)
    ids = {}
    for name in ("p1", "p2"):
        response = await module_admin.post("/api/collections/people/records", json={"name": name})
        ids[name] = response.json()["id"]
    response = await module_admin.post(THINGS, json={"name": "t1", "friends": [ids["p1"]]})
    ids["t1"] = response.json()["id"]
    return ids


@cases(CREATES)
async def test_create_values(module_admin, seeded, case):
    response = await run(module_admin, case, **seeded)
    if response.status_code == 201:
        got = await module_admin.get(f"{THINGS}/{response.json()['id']}")
        assert got.json() == response.json()  # what was stored is what came back


@cases(UPDATES)
async def test_update_values(module_admin, seeded, case):
    before = (await module_admin.get(f"{THINGS}/{seeded['t1']}")).json()
    response = await run(module_admin, case, **seeded)
    if response.status_code >= 400:
        assert (await module_admin.get(f"{THINGS}/{seeded['t1']}")).json() == before


async def test_every_problem_is_reported_at_once(module_admin, seeded):
    body = {
        "title": 1,
        "count": "x",
        "nope": 1,
        "created": "2026-01-01T00:00:00Z",
        "avatar": "f.png",
        "tags": ["a", "a"],
        "id": "bad",
    }
    response = await run(module_admin, Case("all at once", "POST", THINGS, body, 400))
    fields = response.json()["error"]["fields"]
    assert {name: entry["code"] for name, entry in fields.items()} == {
        "name": "required",
        "title": "invalid_type",
        "count": "invalid_type",
        "nope": "unknown_field",
        "created": "read_only",
        "avatar": "file_not_found",
        "tags": "duplicate_value",
        "id": "invalid_id",
    }


async def test_a_flood_of_unknown_fields_gets_a_bounded_answer(module_admin, seeded):
    body = {"name": "n", **{f"f{i}": i for i in range(5000)}}
    response = await run(module_admin, Case("many unknown", "POST", THINGS, body, 400))
    fields = response.json()["error"]["fields"]
    assert 0 < len(fields) <= 50
    assert all(entry["code"] == "unknown_field" for entry in fields.values())


async def test_required_fields_missing_on_create(module_admin, seeded):
    response = await run(
        module_admin, Case("nothing", "POST", "/api/collections/strict/records", {}, 400)
    )
    fields = response.json()["error"]["fields"]
    assert {name: entry["code"] for name, entry in fields.items()} == {
        "name": "required",
        "n": "required",
        "who": "required",
        "labels": "required",
    }
    body = {"name": "s", "n": 1, "who": seeded["p1"], "labels": []}
    await run(
        module_admin,
        Case("empty", "POST", "/api/collections/strict/records", body, 400,
             error("validation_failed", labels="required")),
    )  # fmt: skip
    body["labels"] = ["y"]
    await run(module_admin, Case("all", "POST", "/api/collections/strict/records", body, 201))


async def test_defaults_are_applied_on_create(module_admin, seeded):
    before = datetime.now(UTC)
    response = await run(module_admin, Case("defaults", "POST", THINGS, {"name": "d"}, 201))
    record = response.json()
    assert record["level"] == 1
    assert record["kind"] == "x"
    assert record["prefs"] == {"theme": "dark"}
    assert record["tags"] == [] and record["friends"] == []
    assert record["title"] is None and record["meta"] is None and record["owner"] is None
    stamp = datetime.fromisoformat(record["stamp"])
    assert before - timedelta(seconds=5) < stamp < datetime.now(UTC) + timedelta(seconds=5)
    assert record["stamp"] == record["created"]  # both now() of the same transaction


async def test_hidden_fields_are_written_but_never_returned(module_admin, module_app, seeded):
    created = await module_admin.post(THINGS, json={"name": "h", "secret": "s3cret"})
    assert created.status_code == 201
    rid = created.json()["id"]
    patched = await module_admin.patch(f"{THINGS}/{rid}", json={"secret": "other"})
    put = await module_admin.put(f"{THINGS}/{rid}", json={"secret": "third"})
    got = await module_admin.get(f"{THINGS}/{rid}")
    listed = await module_admin.get(THINGS, params={"per_page": 500})
    batch = await module_admin.post(
        "/api/batch",
        json={"operations": [{"op": "update", "collection": "things", "id": rid, "body": {}}]},
    )
    for record in (
        created.json(),
        patched.json(),
        put.json(),
        got.json(),
        batch.json()["results"][0]["body"],
        *listed.json()["items"],
    ):
        assert "secret" not in record
    stored = await module_app.ctx.db.fetchval("SELECT secret FROM things WHERE id = $1", rid)
    assert stored == "third"
    sorted_by = await module_admin.get(THINGS, params={"sort": "secret"})
    assert sorted_by.status_code == 400
