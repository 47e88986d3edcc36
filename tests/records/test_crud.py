"""Create, get, update, upsert and delete round trips through /api/collections/{c}/records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import apply_schema
from tests.records.scenarios import Case, Ref, cases, error, run

POSTS = {
    "collections": {
        "posts": {
            "fields": {
                "title": {"type": "text", "required": True},
                "body": {"type": "text", "required": True},
                "views": {"type": "integer", "default": 0},
                "note": "text",
            }
        }
    }
}
URL = "/api/collections/posts/records"
FULL = {"title": "hello", "body": "world"}
MISSING = "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b"


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def uuid7_time(text: str) -> datetime:
    """The millisecond timestamp in the first 48 bits of a version 7 UUID."""
    millis = int(uuid.UUID(text).hex[:12], 16)
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(URL, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_create_returns_the_record_with_a_time_ordered_server_id(admin):
    await apply_schema(admin, POSTS)
    records = [await create(admin, {**FULL, "note": str(i)}) for i in range(5)]
    for i, record in enumerate(records):
        assert set(record) == {"id", "created", "updated", "title", "body", "views", "note"}
        assert record | {"id": None, "created": None, "updated": None} == {
            "id": None,
            "created": None,
            "updated": None,
            "title": "hello",
            "body": "world",
            "views": 0,
            "note": str(i),
        }
        parsed = uuid.UUID(record["id"])
        assert str(parsed) == record["id"] and parsed.version == 7
        assert record["created"] == record["updated"]
        assert record["created"].endswith("Z")
        assert abs(uuid7_time(record["id"]) - when(record["created"])) < timedelta(seconds=2)
    prefixes = [uuid.UUID(r["id"]).hex[:12] for r in records]
    assert prefixes == sorted(prefixes)
    assert len({r["id"] for r in records}) == len(records)


async def test_get_returns_exactly_what_create_returned(admin):
    await apply_schema(admin, POSTS)
    record = await create(admin, FULL)
    got = await admin.get(f"{URL}/{record['id']}")
    assert got.status_code == 200
    assert got.json() == record
    upper = await admin.get(f"{URL}/{record['id'].upper()}")
    assert upper.json() == record


async def test_patch_updates_given_fields_and_the_updated_time_only(admin):
    await apply_schema(admin, POSTS)
    record = await create(admin, {**FULL, "note": "keep"})
    response = await admin.patch(f"{URL}/{record['id']}", json={"title": "changed", "views": 7})
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["title"] == "changed" and patched["views"] == 7
    assert patched["body"] == "world" and patched["note"] == "keep"
    assert patched["created"] == record["created"]
    assert when(patched["updated"]) > when(record["updated"])
    assert (await admin.get(f"{URL}/{record['id']}")).json() == patched


async def test_patch_with_an_empty_body_changes_nothing(admin):
    await apply_schema(admin, POSTS)
    record = await create(admin, FULL)
    response = await admin.patch(f"{URL}/{record['id']}", json={})
    assert response.status_code == 200
    assert response.json() == record


async def test_patch_can_set_a_nullable_field_to_null(admin):
    await apply_schema(admin, POSTS)
    record = await create(admin, {**FULL, "note": "x"})
    response = await admin.patch(f"{URL}/{record['id']}", json={"note": None})
    assert response.status_code == 200
    assert response.json()["note"] is None


async def test_put_creates_a_record_with_the_client_id_then_updates_it(admin):
    await apply_schema(admin, POSTS)
    rid = str(uuid.uuid4())
    first = await admin.put(f"{URL}/{rid}", json={**FULL, "views": 3})
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["id"] == rid and created["views"] == 3 and created["title"] == "hello"
    assert "_inserted" not in created
    # A partial body updates an existing record although title and body are required.
    second = await admin.put(f"{URL}/{rid}", json={"views": 4})
    assert second.status_code == 200, second.text
    updated = second.json()
    assert updated == {**created, "views": 4, "updated": updated["updated"]}
    assert when(updated["updated"]) > when(created["updated"])
    empty = await admin.put(f"{URL}/{rid}", json={})
    assert empty.status_code == 200
    assert empty.json() == updated
    listed = await admin.get(URL)
    assert listed.json()["total"] == 1


async def test_put_of_a_new_record_still_needs_the_required_fields(admin):
    await apply_schema(admin, POSTS)
    rid = str(uuid.uuid4())
    response = await admin.put(f"{URL}/{rid}", json={"title": "only a title"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "validation_failed"
    assert response.json()["error"]["fields"]["body"]["code"] == "required"
    assert (await admin.get(f"{URL}/{rid}")).status_code == 404


async def test_put_canonicalises_the_id_in_the_path(admin):
    await apply_schema(admin, POSTS)
    rid = uuid.uuid4()
    response = await admin.put(f"{URL}/{rid.hex.upper()}", json=FULL)
    assert response.status_code == 201
    assert response.json()["id"] == str(rid)


async def test_delete_then_the_record_is_gone(admin):
    await apply_schema(admin, POSTS)
    record = await create(admin, FULL)
    deleted = await admin.delete(f"{URL}/{record['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    for response in (
        await admin.get(f"{URL}/{record['id']}"),
        await admin.delete(f"{URL}/{record['id']}"),
        await admin.patch(f"{URL}/{record['id']}", json={"title": "x"}),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "record_not_found"
    assert (await admin.get(URL)).json()["total"] == 0


async def test_create_with_a_client_chosen_id(admin):
    await apply_schema(admin, POSTS)
    chosen = uuid.uuid4()
    record = await create(admin, {**FULL, "id": str(chosen).upper()})
    assert record["id"] == str(chosen)
    assert (await admin.get(f"{URL}/{chosen}")).status_code == 200


SCENARIOS = [
    Case("get unknown id", "GET", URL + "/" + MISSING, status=404, expect=error("record_not_found")),
    Case("get malformed id", "GET", URL + "/nope", status=404, expect=error("record_not_found")),
    Case(
        "patch unknown id",
        "PATCH",
        URL + "/" + MISSING,
        {"title": "x"},
        404,
        error("record_not_found"),
    ),
    Case("patch malformed id", "PATCH", URL + "/x", {}, 404, error("record_not_found")),
    Case("delete unknown id", "DELETE", URL + "/" + MISSING, status=404),
    Case("delete malformed id", "DELETE", URL + "/1", status=404, expect=error("record_not_found")),
    Case("put malformed id", "PUT", URL + "/abc", FULL, 400, error("validation_failed", id="invalid_id")),
    Case("create invalid id", "POST", URL, {**FULL, "id": "abc"}, 400, error("validation_failed", id="invalid_id")),
    Case("create numeric id", "POST", URL, {**FULL, "id": 7}, 400, error("validation_failed", id="invalid_id")),
    Case("create duplicate id", "POST", URL, {**FULL, "id": Ref("p1")}, 409, error("unique_violation", id="not_unique")),
    Case("create array body", "POST", URL, [FULL], 400, error("invalid_body")),
    Case("create string body", "POST", URL, "hello", 400, error("invalid_body")),
    Case("patch null body", "PATCH", URL + "/{p1}", b"null", 400, error("invalid_body")),
    Case("patch changes id", "PATCH", URL + "/{p1}", {"id": MISSING}, 400, error("validation_failed", id="read_only")),
    Case("patch same id", "PATCH", URL + "/{p1}", {"id": Ref("p1"), "note": "n"}, 200, {"id": Ref("p1"), "note": "n"}),
    Case("put other id in body", "PUT", URL + "/{p1}", {"id": MISSING}, 400, error("validation_failed", id="read_only")),
    Case("patch created", "PATCH", URL + "/{p1}", {"created": "2020-01-01T00:00:00Z"}, 400, error("validation_failed", created="read_only")),
    Case("put updated", "PUT", URL + "/{p1}", {"updated": "2020-01-01T00:00:00Z"}, 400, error("validation_failed", updated="read_only")),
    Case("patch required to null", "PATCH", URL + "/{p1}", {"title": None}, 400, error("validation_failed", title="required")),
    Case("patch required to empty", "PATCH", URL + "/{p1}", {"title": ""}, 400, error("validation_failed", title="required")),
    Case("get existing", "GET", URL + "/{p1}", status=200, expect={"id": Ref("p1"), "title": "hello"}),
]  # fmt: skip


@pytest.fixture(scope="module")
async def seeded(module_admin):
    await apply_schema(module_admin, POSTS)
    return {"p1": str((await create(module_admin, FULL))["id"])}


@cases(SCENARIOS)
async def test_crud_scenarios(module_admin, seeded, case):
    before = (await module_admin.get(f"{URL}/{seeded['p1']}")).json()
    await run(module_admin, case, **seeded)
    if case.status >= 400:
        after = await module_admin.get(f"{URL}/{seeded['p1']}")
        assert after.json() == before  # a refused request changes nothing


async def test_locked_rules_leave_records_to_service_keys(admin, anon):
    """No rules declared: every operation is locked (deny by default)."""
    await apply_schema(admin, POSTS)
    record = await create(admin, FULL)
    one = f"{URL}/{record['id']}"
    for response in (
        await anon.get(URL),
        await anon.get(one),
        await anon.post(URL, json=FULL),
        await anon.patch(one, json={"title": "x"}),
        await anon.put(one, json={"title": "x"}),
        await anon.delete(one),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
        assert "locked" in response.json()["error"]["message"]
    wrong = await anon.get(one, headers={"Authorization": "Bearer baas_sk_wrong"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert wrong.json()["error"]["code"] == "invalid_token"
    assert (await admin.get(one)).json() == record
    assert (await admin.get(URL)).json()["total"] == 1
