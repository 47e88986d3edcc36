"""Errors of the records API: one JSON shape, stable codes and the right status, never a 500."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import strategies as st

from tests.conftest import apply_schema
from tests.records.properties import for_all
from tests.records.scenarios import Case, assert_error_shape, cases, error, run

SCHEMA = {
    "collections": {
        "posts": {
            "fields": {
                "title": "text",
                "slug": {"type": "text", "unique": True},
                "a": "integer",
                "b": "integer",
            },
            "indexes": [{"fields": ["a", "b"], "unique": True}],
        },
        "fuzz": {
            "fields": {
                "t": {"type": "text", "max": 20},
                "i": {"type": "integer", "min": 0},
                "n": "number",
                "f": "bool",
                "at": "datetime",
                "d": "date",
                "j": "json",
                "s": {"type": "select", "values": ["x", "y"]},
                "m": {"type": "select", "values": ["x", "y", "z"], "multiple": True},
                "r": {"type": "relation", "collection": "posts"},
                "rs": {"type": "relation", "collection": "posts", "multiple": True},
                "u": "url",
                "e": "email",
            }
        },
    }
}
POSTS = "/api/collections/posts/records"
JSON = {"Content-Type": "application/json"}
MIB = 1_048_576


def raw(name: str, method: str, body: bytes, status: int, expect: Any, **headers: str) -> Case:
    return Case(name, method, POSTS, body, status, expect, {**JSON, **headers})


SCENARIOS = [
    Case("list of unknown collection", "GET", "/api/collections/nope/records", status=404, expect=error("collection_not_found")),
    Case("get in unknown collection", "GET", "/api/collections/nope/records/{s1}", status=404, expect=error("collection_not_found")),
    Case("create in unknown collection", "POST", "/api/collections/nope/records", {}, 404, error("collection_not_found")),
    Case("patch in unknown collection", "PATCH", "/api/collections/nope/records/{s1}", {}, 404, error("collection_not_found")),
    Case("put in unknown collection", "PUT", "/api/collections/nope/records/{s1}", {}, 404, error("collection_not_found")),
    Case("delete in unknown collection", "DELETE", "/api/collections/nope/records/{s1}", status=404, expect=error("collection_not_found")),
    Case("system table is no collection", "GET", "/api/collections/schema_state/records", status=404, expect=error("collection_not_found")),
    raw("malformed json", "POST", b'{"title": }', 400, {"error": {"code": "malformed_json", "line": 1, "column": 11}}),
    raw("malformed json on line 3", "POST", b'{\n  "title": "x",\n  oops\n}', 400, {"error": {"code": "malformed_json", "line": 3, "column": 3}}),
    raw("trailing garbage", "POST", b'{"title": "x"} x', 400, error("malformed_json")),
    raw("trailing comma", "POST", b'{"title": "x",}', 400, error("malformed_json")),
    raw("single quotes", "POST", b"{'title': 'x'}", 400, error("malformed_json")),
    raw("NaN literal", "POST", b'{"a": NaN}', 400, error("malformed_json")),
    raw("number out of double range", "POST", b'{"a": 1e400}', 400, error("validation_failed")),
    raw("empty body", "POST", b"", 400, error("malformed_json")),
    raw("lone high surrogate escape", "POST", b'{"title": "\\ud800"}', 400, error("malformed_json")),
    raw("lone low surrogate escape", "POST", b'{"title": "a\\udc00b"}', 400, error("malformed_json")),
    raw("invalid utf-8", "POST", b'{"title": "\xff\xfe"}', 400, error("malformed_json")),
    raw("overlong utf-8", "POST", b'{"title": "\xc0\xaf"}', 400, error("malformed_json")),
    raw("utf-16 body", "POST", '{"title": "x"}'.encode("utf-16"), 400, error("malformed_json")),
    raw("nesting beyond the parser's limit", "POST", b"[" * 5000 + b"]" * 5000, 400, error("malformed_json")),
    raw("NUL escape in text", "POST", b'{"title": "a\\u0000b"}', 400, error("validation_failed", title="invalid_value")),
    raw("json number body", "POST", b"42", 400, error("invalid_body")),
    raw("json null body", "POST", b"null", 400, error("invalid_body")),
    raw("text/plain", "POST", b'{"title": "x"}', 415, error("unsupported_media_type"), **{"Content-Type": "text/plain"}),
    raw("form encoded", "POST", b"title=x", 415, error("unsupported_media_type"), **{"Content-Type": "application/x-www-form-urlencoded"}),
    raw("multipart form", "POST", b'--b\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n--b--\r\n', 201, {"title": "x"}, **{"Content-Type": "multipart/form-data; boundary=b"}),
    raw("multipart cut short", "POST", b'--b\r\nContent-Disposition: form-data; name="title"\r\n\r\nx', 400, error("invalid_multipart"), **{"Content-Type": "multipart/form-data; boundary=b"}),
    raw("json with charset", "POST", b'{"title": "x"}', 201, {"title": "x"}, **{"Content-Type": "application/json; charset=utf-8"}),
    raw("json media type in capitals", "POST", b'{"title": "x"}', 201, {"title": "x"}, **{"Content-Type": "Application/JSON"}),
    raw("a +json media type", "POST", b'{"title": "y"}', 201, {"title": "y"}, **{"Content-Type": "application/merge-patch+json"}),
    Case("patch with text/plain", "PATCH", POSTS + "/{s1}", b"{}", 415, error("unsupported_media_type"), {"Content-Type": "text/plain"}),
    Case("duplicate unique field", "POST", POSTS, {"slug": "taken"}, 409, error("unique_violation", slug="not_unique")),
    Case("patch onto a unique value", "PATCH", POSTS + "/{s2}", {"slug": "taken"}, 409, error("unique_violation", slug="not_unique")),
    Case("put creating a duplicate", "PUT", POSTS + "/0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b", {"slug": "taken"}, 409, error("unique_violation", slug="not_unique")),
    Case("duplicate composite index", "POST", POSTS, {"a": 1, "b": 1}, 409, error("unique_violation", a="not_unique", b="not_unique")),
    Case("composite index, other pair", "POST", POSTS, {"a": 1, "b": 2}, 201, {"a": 1, "b": 2}),
    Case("composite index with a null", "POST", POSTS, {"a": 1}, 201, {"a": 1, "b": None}),
    Case("unique allows two nulls", "POST", POSTS, {"title": "no slug"}, 201, {"slug": None}),
]  # fmt: skip


@pytest.fixture(scope="module")
async def seeded(module_admin):
    await apply_schema(module_admin, SCHEMA)
    first = await module_admin.post(POSTS, json={"slug": "taken", "a": 1, "b": 1})
    second = await module_admin.post(POSTS, json={"slug": "other"})
    return {"s1": first.json()["id"], "s2": second.json()["id"]}


@cases(SCENARIOS)
async def test_error_scenarios(module_admin, seeded, case):
    response = await run(module_admin, case, **seeded)
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_unique_violation_message_names_the_field(module_admin, seeded):
    response = await module_admin.post(POSTS, json={"slug": "taken"})
    assert "slug" in response.json()["error"]["message"]
    composite = await module_admin.post(POSTS, json={"a": 1, "b": 1})
    assert "a, b" in composite.json()["error"]["message"]


async def test_a_body_of_exactly_the_limit_is_read(module_admin, seeded):
    prefix, suffix = b'{"title": "', b'"}'
    body = prefix + b"x" * (MIB - len(prefix) - len(suffix)) + suffix
    assert len(body) == MIB
    response = await module_admin.post(POSTS, content=body, headers=JSON)
    assert response.status_code == 201, response.text[:300]


async def test_a_body_over_the_limit_is_refused_with_content_length(module_admin, seeded):
    response = await module_admin.post(POSTS, content=b" " * (MIB + 1), headers=JSON)
    assert response.status_code == 413
    assert_error_shape(response)
    assert response.json()["error"]["code"] == "body_too_large"
    assert response.json()["error"]["limit"] == MIB


async def test_a_streamed_body_over_the_limit_is_refused(module_admin, seeded):
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}'

    response = await module_admin.post(POSTS, content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert_error_shape(response)
    assert response.json()["error"]["code"] == "body_too_large"


async def test_a_streamed_body_under_the_limit_is_read(module_admin, seeded):
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b'{"ti', b'tle": "stre', b'amed"}'):
            yield part

    response = await module_admin.post(POSTS, content=chunks(), headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "streamed"


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
    | st.sampled_from(
        [
            "x",
            "2026-01-31",
            "2026-01-31T12:00:00+14:00",
            "0001-01-01T00:00:00-00:01",
            "9999-12-31T23:59:59.999999Z",
            "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b",
            "https://example.com",
            "a@b.co",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
TYPED_VALUES = st.one_of(
    st.datetimes(timezones=st.none() | OFFSETS).map(datetime.isoformat),
    st.dates().map(date.isoformat),
    st.uuids().map(str),
    st.lists(st.uuids().map(str), max_size=3),
    st.lists(st.sampled_from(["x", "y", "z", "w"]), max_size=4),
    st.sampled_from(["x", "y", "", "https://a.b/c", "http://[::1]/", "mailto:a@b.co"]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)
FUZZ_KEYS = st.sampled_from(
    [*SCHEMA["collections"]["fuzz"]["fields"], "id", "created", "updated", "nope"]  # type: ignore[index]
)


async def test_random_bodies_never_cause_a_server_error(module_admin, seeded):
    url = "/api/collections/fuzz/records"

    async def check(body: dict[str, Any]) -> None:
        created = await module_admin.post(url, json=body)
        assert created.status_code in (201, 400), created.text
        if created.status_code == 400:
            assert_error_shape(created)
            return
        rid = created.json()["id"]
        assert (await module_admin.get(f"{url}/{rid}")).json() == created.json()
        patched = await module_admin.patch(f"{url}/{rid}", json=body)
        assert patched.status_code == 200, patched.text

    values = JSON_VALUES | TYPED_VALUES
    await for_all(st.dictionaries(FUZZ_KEYS, values, max_size=6), check, max_examples=60)


async def test_random_query_strings_never_cause_a_server_error(module_admin, seeded):
    url = "/api/collections/fuzz/records"
    sorts = st.lists(
        st.sampled_from(["t", "-i", "n", "-f", "at", "-d", "s", "r", "id", "-created", "j", "x"]),
        min_size=1,
        max_size=3,
    )

    async def check(example: tuple[list[str], list[Any], dict[str, str]]) -> None:
        sort, values, extra = example
        keys = [*sort, *([] if any(k.lstrip("-") == "id" for k in sort) else ["id"])]
        payload = json.dumps([keys, values]).encode()  # orjson refuses ints beyond 64 bits
        cursor = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        params = {"sort": ",".join(sort), "cursor": cursor, **extra}
        response = await module_admin.get(url, params=params)
        assert response.status_code in (200, 400), response.text
        if response.status_code == 400:
            assert_error_shape(response)

    extra = st.dictionaries(
        st.sampled_from(["page", "per_page", "skip_total", "sort", "cursor", "filter"]),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
        max_size=2,
    )
    await for_all(
        st.tuples(sorts, st.lists(JSON_VALUES, max_size=4), extra), check, max_examples=40
    )
