"""Applying plans to a real PostgreSQL: data survives renames, failures change nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import SERVICE_KEY, apply_schema

GOLDEN = Path(__file__).parent / "golden"
RECORDS = "/api/collections/{}/records"


async def _apply(admin: Any, document: dict[str, Any], **extra: Any) -> Any:
    return await admin.post("/api/admin/schema/apply", json={"document": document, **extra})


async def _catalog(ctx: Any) -> list[tuple[Any, ...]]:
    """Everything schema-shaped in `public`: columns, constraints, indexes, triggers."""
    rows = await ctx.db.fetch(
        """
        SELECT 'column', table_name, column_name || ' ' || data_type || ' ' || is_nullable
          FROM information_schema.columns WHERE table_schema = 'public'
        UNION ALL
        SELECT 'constraint', conrelid::regclass::text, conname || ' ' || pg_get_constraintdef(oid)
          FROM pg_constraint WHERE connamespace = 'public'::regnamespace
        UNION ALL
        SELECT 'index', tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'
        UNION ALL
        SELECT 'trigger', tgrelid::regclass::text, tgname FROM pg_trigger
          WHERE NOT tgisinternal AND tgrelid::regclass::text NOT LIKE 'baas.%'
        ORDER BY 1, 2, 3
        """
    )
    return [tuple(r) for r in rows]


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(GOLDEN.glob("*.yaml")) if "problems" not in yaml.safe_load(p.read_text())],
    ids=lambda p: p.stem,
)
async def test_every_golden_plan_runs_on_postgresql(admin: Any, path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    if case["before"]:
        await apply_schema(admin, case["before"])
    applied = await _apply(admin, case["after"], allow_destructive=True)
    assert applied.status_code == 200, applied.text
    again = await admin.post("/api/admin/schema/diff", json={"document": case["after"]})
    assert again.json()["steps"] == []


BLOG = {
    "collections": {
        "members": {"fields": {"name": {"type": "text", "required": True}}},
        "posts": {
            "fields": {
                "title": {"type": "text", "required": True},
                "slug": {"type": "text", "unique": True},
                "author": {"type": "relation", "collection": "members", "on_delete": "cascade"},
                "readers": {"type": "relation", "collection": "members", "multiple": True},
            }
        },
    }
}
RENAMED = {
    "collections": {
        "people": {
            "renamed_from": "members",
            "fields": {"full_name": {"type": "text", "required": True, "renamed_from": "name"}},
        },
        "articles": {
            "renamed_from": "posts",
            "fields": {
                "headline": {"type": "text", "required": True, "renamed_from": "title"},
                "slug": {"type": "text", "unique": True},
                "author": {"type": "relation", "collection": "people", "on_delete": "cascade"},
                "readers": {"type": "relation", "collection": "people", "multiple": True},
            },
        },
    }
}


async def test_apply_rename_apply_keeps_data_and_constraints(admin: Any) -> None:
    await apply_schema(admin, BLOG)
    ann = (await admin.post(RECORDS.format("members"), json={"name": "Ann"})).json()
    post = await admin.post(
        RECORDS.format("posts"),
        json={"title": "Hi", "slug": "hi", "author": ann["id"], "readers": [ann["id"]]},
    )
    assert post.status_code == 201

    await apply_schema(admin, RENAMED)

    moved = await admin.get(f"{RECORDS.format('articles')}/{post.json()['id']}")
    assert moved.status_code == 200
    assert moved.json()["headline"] == "Hi"
    assert moved.json()["readers"] == [ann["id"]]
    assert (await admin.get(f"{RECORDS.format('people')}/{ann['id']}")).json()["full_name"] == "Ann"
    assert (await admin.get(RECORDS.format("posts"))).status_code == 404
    # The unique index followed the rename and the error names the field by its new collection.
    duplicate = await admin.post(
        RECORDS.format("articles"), json={"headline": "x", "slug": "hi", "author": ann["id"]}
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["fields"] == {
        "slug": {"code": "not_unique", "message": "is already taken"}
    }
    # The multi-relation triggers were rebuilt for the new names and still check ids.
    bad = await admin.post(
        RECORDS.format("articles"),
        json={"headline": "x", "readers": ["0190f5a0-0000-7000-8000-000000000000"]},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"]["readers"]["code"] == "relation_not_found"
    # The cascade still follows the (renamed) target.
    assert (await admin.delete(f"{RECORDS.format('people')}/{ann['id']}")).status_code == 204
    assert (await admin.get(f"{RECORDS.format('articles')}/{post.json()['id']}")).status_code == 404


async def test_a_failing_step_leaves_the_schema_exactly_as_before(admin: Any, ctx: Any) -> None:
    await apply_schema(admin, {"collections": {"posts": {"fields": {"slug": "text"}}}})
    for _ in range(2):
        await admin.post(RECORDS.format("posts"), json={"slug": "same"})
    before = await _catalog(ctx)
    history = (await admin.get("/api/admin/schema/history")).json()["items"]

    failing = {
        "collections": {
            "posts": {"fields": {"slug": {"type": "text", "unique": True}, "extra": "text"}},
            "tags": {"fields": {"name": "text"}},
        }
    }
    response = await _apply(admin, failing)

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "schema_apply_failed"
    assert "unique index on posts.slug" in error["message"]
    assert await _catalog(ctx) == before
    assert (await admin.get("/api/admin/schema/history")).json()["items"] == history
    assert ctx.schema.version == 2  # 1 added the built-in users collection
    assert (await admin.get(RECORDS.format("tags"))).status_code == 404


async def test_destructive_steps_need_confirmation(admin: Any) -> None:
    await apply_schema(admin, BLOG)
    smaller = {"collections": {"members": BLOG["collections"]["members"]}}

    refused = await _apply(admin, smaller)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "destructive_change"
    assert refused.json()["error"]["steps"] == ["drop collection posts and all its records"]
    assert (await admin.get(RECORDS.format("posts"))).status_code == 200

    confirmed = await _apply(admin, smaller, allow_destructive=True)
    assert confirmed.status_code == 200
    assert (await admin.get(RECORDS.format("posts"))).status_code == 404


async def test_required_field_without_default_on_populated_collection(admin: Any) -> None:
    await apply_schema(admin, {"collections": {"posts": {"fields": {"title": "text"}}}})
    await admin.post(RECORDS.format("posts"), json={})
    required = {
        "collections": {
            "posts": {"fields": {"title": "text", "body": {"type": "text", "required": True}}}
        }
    }
    added = await _apply(admin, required)
    assert added.status_code == 400
    assert added.json()["error"]["code"] == "invalid_schema"
    assert "cannot add a required field without a default" in added.json()["error"]["problems"][0]

    make_required = {
        "collections": {"posts": {"fields": {"title": {"type": "text", "required": True}}}}
    }
    refused = await _apply(admin, make_required)
    assert refused.json()["error"]["code"] == "destructive_change"
    failed = await _apply(admin, make_required, allow_destructive=True)
    assert failed.status_code == 409
    assert "1 records of posts have no value for title" in failed.json()["error"]["message"]


async def test_type_change_converts_data_or_fails_cleanly(admin: Any, ctx: Any) -> None:
    await apply_schema(admin, {"collections": {"items": {"fields": {"code": "text"}}}})
    created = await admin.post(RECORDS.format("items"), json={"code": "42"})
    as_integer = {"collections": {"items": {"fields": {"code": "integer"}}}}
    assert (await _apply(admin, as_integer, allow_destructive=True)).status_code == 200
    got = await admin.get(f"{RECORDS.format('items')}/{created.json()['id']}")
    assert got.json()["code"] == 42

    back = {"collections": {"items": {"fields": {"code": "text"}}}}
    assert (await _apply(admin, back)).status_code == 200
    await admin.post(RECORDS.format("items"), json={"code": "not a number"})
    before = await _catalog(ctx)
    failed = await _apply(admin, as_integer, allow_destructive=True)
    assert failed.status_code == 409
    assert "invalid input syntax for type bigint" in failed.json()["error"]["message"]
    assert await _catalog(ctx) == before


async def test_concurrent_applies_from_the_same_version(admin: Any) -> None:
    one = {"collections": {"a": {"fields": {"x": "text"}}}}
    two = {"collections": {"b": {"fields": {"y": "text"}}}}
    responses = await asyncio.gather(_apply(admin, one), _apply(admin, two, allow_destructive=True))
    statuses = sorted(r.status_code for r in responses)
    assert statuses in ([200, 200], [200, 409])
    history = (await admin.get("/api/admin/schema/history")).json()["items"]
    assert [h["version"] for h in history] == list(range(len(history), 0, -1))


async def test_stale_base_version_is_refused(admin: Any) -> None:
    await apply_schema(admin, BLOG)
    stale = await _apply(admin, {"collections": {}}, base_version=0, allow_destructive=True)
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "schema_changed"


async def test_admin_api_needs_a_service_key(client: Any) -> None:
    anonymous = await client.post("/api/admin/schema/apply", json={"document": BLOG})
    assert anonymous.status_code == 401
    wrong = await client.get("/api/admin/collections", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = await client.get(
        "/api/admin/collections", headers={"Authorization": f"Bearer {SERVICE_KEY}"}
    )
    assert ok.status_code == 200
