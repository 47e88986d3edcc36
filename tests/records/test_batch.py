"""POST /api/batch: several operations in one transaction, all or nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import apply_schema
from tests.records.scenarios import Case, assert_matches, cases, error, run

SCHEMA = {
    "collections": {
        "people": {"fields": {"name": "text"}},
        "posts": {
            "fields": {
                "title": {"type": "text", "required": True},
                "slug": {"type": "text", "unique": True},
                "views": "integer",
                "author": {"type": "relation", "collection": "people", "on_delete": "restrict"},
            }
        },
    }
}
BATCH = "/api/batch"
POSTS = "/api/collections/posts/records"


def create(body: dict[str, Any], collection: str = "posts") -> dict[str, Any]:
    return {"op": "create", "collection": collection, "body": body}


def op(kind: str, rid: str, body: dict[str, Any] | None = None, collection: str = "posts") -> Any:
    out: dict[str, Any] = {"op": kind, "collection": collection, "id": rid}
    if body is not None:
        out["body"] = body
    return out


async def total(client: httpx.AsyncClient, collection: str = "posts") -> int:
    response = await client.get(f"/api/collections/{collection}/records")
    return response.json()["total"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
async def schema(module_admin):
    await apply_schema(module_admin, SCHEMA)


async def test_every_kind_of_operation(admin):
    await apply_schema(admin, SCHEMA)
    existing = (await admin.post(POSTS, json={"title": "old", "views": 1})).json()
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    operations = [
        create({"id": a, "title": "a"}),
        op("update", a, {"views": 5}),
        op("upsert", b, {"title": "b"}),
        op("upsert", existing["id"], {"views": 2}),
        op("delete", existing["id"]),
        create({"name": "someone"}, "people"),
    ]
    response = await admin.post(BATCH, json={"operations": operations})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert_matches(
        results,
        [
            {"status": 201, "body": {"id": a, "title": "a", "views": None}},
            {"status": 200, "body": {"id": a, "title": "a", "views": 5}},
            {"status": 201, "body": {"id": b, "title": "b"}},
            {"status": 200, "body": {"id": existing["id"], "title": "old", "views": 2}},
            {"status": 204},
            {"status": 201, "body": {"name": "someone"}},
        ],
    )
    assert "body" not in results[4]
    assert (await admin.get(f"{POSTS}/{a}")).json() == results[1]["body"]
    assert (await admin.get(f"{POSTS}/{b}")).json() == results[2]["body"]
    assert (await admin.get(f"{POSTS}/{existing['id']}")).status_code == 404
    # One transaction: every record written by the batch carries the same time.
    assert results[0]["body"]["created"] == results[2]["body"]["created"]


async def test_a_failing_operation_undoes_the_whole_batch(admin):
    await apply_schema(admin, SCHEMA)
    kept = (await admin.post(POSTS, json={"title": "kept", "slug": "taken"})).json()
    person = (await admin.post("/api/collections/people/records", json={"name": "p"})).json()
    await admin.post(POSTS, json={"title": "by p", "author": person["id"]})
    doomed = (await admin.post(POSTS, json={"title": "doomed"})).json()
    failing_last: list[tuple[dict[str, Any], int, str]] = [
        (op("update", str(uuid.uuid4()), {"views": 1}), 404, "record_not_found"),
        (create({"title": ""}), 400, "validation_failed"),
        (create({"title": "dup", "slug": "taken"}), 409, "unique_violation"),
        (op("delete", person["id"], collection="people"), 409, "still_referenced"),
        (create({"title": "x"}, "nope"), 404, "collection_not_found"),
        ({"op": "explode", "collection": "posts"}, 400, "invalid_operation"),
    ]
    for failing, status, code in failing_last:
        operations = [
            create({"title": "new one"}),
            op("update", kept["id"], {"views": 99}),
            op("delete", doomed["id"]),
            create({"name": "new"}, "people"),
            failing,
        ]
        response = await admin.post(BATCH, json={"operations": operations})
        assert response.status_code == status, response.text
        assert_matches(response.json(), {"error": {"code": code, "operation": 4}})
        assert (await admin.get(f"{POSTS}/{kept['id']}")).json() == kept
        assert (await admin.get(f"{POSTS}/{doomed['id']}")).json() == doomed
        assert await total(admin) == 3
        assert await total(admin, "people") == 1


async def test_unique_conflict_between_two_operations(admin):
    await apply_schema(admin, SCHEMA)
    operations = [create({"title": "a", "slug": "s"}), create({"title": "b", "slug": "s"})]
    response = await admin.post(BATCH, json={"operations": operations})
    assert response.status_code == 409
    assert_matches(
        response.json(),
        {"error": {**error("unique_violation", slug="not_unique")["error"], "operation": 1}},
    )
    assert await total(admin) == 0
    assert (await admin.post(POSTS, json={"title": "after"})).status_code == 201


async def test_the_batch_size_limit(module_admin, schema):
    limit = 100  # settings.max_batch_operations
    full = [create({"title": f"t{i}"}) for i in range(limit)]
    response = await module_admin.post(BATCH, json={"operations": full})
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [201] * limit
    before = await total(module_admin)
    too_many = await module_admin.post(BATCH, json={"operations": [*full, create({"title": "x"})]})
    assert too_many.status_code == 400
    assert too_many.json()["error"]["code"] == "batch_too_large"
    assert "at most 100 operations, not 101" in too_many.json()["error"]["message"]
    assert await total(module_admin) == before


def says(*parts: str) -> Callable[[str], bool]:
    """A message that holds each of `parts`."""
    return lambda message: all(part in message for part in parts)


MISSING = "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b"
MALFORMED = [
    Case("array body", "POST", BATCH, [create({"title": "x"})], 400, error("invalid_body")),
    Case("no operations key", "POST", BATCH, {"ops": []}, 400, {"error": {"code": "invalid_body", "message": says('has no "operations"')}}),
    Case("empty operations", "POST", BATCH, {"operations": []}, 400, {"error": {"code": "invalid_body", "message": says("the operations list is empty", "1 to 100 operations")}}),
    Case("operations not a list", "POST", BATCH, {"operations": {"op": "create"}}, 400, {"error": {"code": "invalid_body", "message": says('"operations" must be a list')}}),
    Case("operation not an object", "POST", BATCH, {"operations": ["create"]}, 400, {"error": {"code": "invalid_operation", "operation": 0}}),
    Case("unknown op", "POST", BATCH, {"operations": [{"op": "drop", "collection": "posts"}]}, 400, error("invalid_operation")),
    Case("op missing", "POST", BATCH, {"operations": [{"collection": "posts", "body": {}}]}, 400, error("invalid_operation")),
    Case("collection missing", "POST", BATCH, {"operations": [{"op": "create", "body": {"title": "x"}}]}, 400, error("invalid_operation")),
    Case("collection not a string", "POST", BATCH, {"operations": [{"op": "create", "collection": 1}]}, 400, error("invalid_operation")),
    Case("update without id", "POST", BATCH, {"operations": [{"op": "update", "collection": "posts", "body": {}}]}, 400, error("invalid_operation")),
    Case("delete with numeric id", "POST", BATCH, {"operations": [{"op": "delete", "collection": "posts", "id": 5}]}, 400, error("invalid_operation")),
    Case("body not an object", "POST", BATCH, {"operations": [create({"title": "ok"}), {"op": "create", "collection": "posts", "body": [1]}]}, 400, {"error": {"code": "invalid_body", "operation": 1}}),
    Case("create without body", "POST", BATCH, {"operations": [{"op": "create", "collection": "posts"}]}, 400, {"error": {"code": "validation_failed", "operation": 0, "fields": {"title": {"code": "required"}}}}),
    Case("upsert with a bad id", "POST", BATCH, {"operations": [op("upsert", "x", {"title": "t"})]}, 400, {"error": {"code": "validation_failed", "fields": {"id": {"code": "invalid_id"}}}}),
    Case("delete of a missing record", "POST", BATCH, {"operations": [op("delete", MISSING)]}, 404, {"error": {"code": "record_not_found", "operation": 0}}),
    Case("malformed json", "POST", BATCH, b'{"operations": [', 400, error("malformed_json"), {"Content-Type": "application/json"}),
    Case("get is not allowed", "GET", BATCH, status=405, expect=error("method_not_allowed")),
]  # fmt: skip


@cases(MALFORMED)
async def test_malformed_batches(module_admin, schema, case):
    before = await total(module_admin)
    await run(module_admin, case)
    assert await total(module_admin) == before


async def test_batch_operations_obey_each_collections_rules(module_app, module_admin, schema):
    """posts declares no rules (locked): an anonymous batch is refused at its first operation."""
    before = await total(module_admin)
    transport = httpx.ASGITransport(app=module_app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as anon:
        response = await anon.post(BATCH, json={"operations": [create({"title": "x"})]})
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
        assert response.json()["error"]["operation"] == 0
        for body in ({"operations": []}, [1]):
            assert (await anon.post(BATCH, json=body)).status_code == 400
    assert await total(module_admin) == before
