"""Relations end to end: single (foreign keys) and multiple (uuid[] with triggers), and what
deleting a target does under on_delete cascade, set_null and restrict."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import apply_schema
from tests.records.scenarios import assert_error_shape

MISSING = "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b"


def single(on_delete: str | None) -> dict[str, Any]:
    field: dict[str, Any] = {"type": "relation", "collection": "people"}
    if on_delete:
        field["on_delete"] = on_delete
    return {"fields": {"ref": field, "note": "text"}}


def multiple(on_delete: str | None) -> dict[str, Any]:
    field: dict[str, Any] = {"type": "relation", "collection": "people", "multiple": True}
    if on_delete:
        field["on_delete"] = on_delete
    return {"fields": {"refs": field, "note": "text"}}


SCHEMA = {
    "collections": {
        "people": {"fields": {"name": "text"}},
        "one_cascade": single("cascade"),
        "one_set_null": single("set_null"),
        "one_restrict": single("restrict"),
        "one_default": single(None),
        "one_required": {
            "fields": {"ref": {"type": "relation", "collection": "people", "required": True}}
        },
        "many_cascade": multiple("cascade"),
        "many_set_null": multiple("set_null"),
        "many_restrict": multiple("restrict"),
        "many_default": multiple(None),
        "nodes": {
            "fields": {
                "name": "text",
                "parent": {"type": "relation", "collection": "nodes", "on_delete": "cascade"},
            }
        },
    }
}


@pytest.fixture(scope="module")
async def schema(module_admin):
    await apply_schema(module_admin, SCHEMA)


def url(collection: str, rid: str | None = None) -> str:
    base = f"/api/collections/{collection}/records"
    return f"{base}/{rid}" if rid else base


async def create(client: httpx.AsyncClient, collection: str, body: dict[str, Any]) -> str:
    response = await client.post(url(collection), json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


async def person(client: httpx.AsyncClient) -> str:
    return await create(client, "people", {"name": "p"})


async def get(client: httpx.AsyncClient, collection: str, rid: str) -> httpx.Response:
    return await client.get(url(collection, rid))


async def test_single_relation_round_trip(module_admin, schema):
    p = await person(module_admin)
    rid = await create(module_admin, "one_default", {"ref": p.upper()})
    assert (await get(module_admin, "one_default", rid)).json()["ref"] == p
    refused = await module_admin.post(url("one_default"), json={"ref": MISSING})
    assert refused.status_code == 400
    assert_error_shape(refused)
    assert refused.json()["error"]["fields"]["ref"]["code"] == "relation_not_found"
    patched = await module_admin.patch(url("one_default", rid), json={"ref": MISSING})
    assert patched.json()["error"]["fields"]["ref"]["code"] == "relation_not_found"
    assert (await get(module_admin, "one_default", rid)).json()["ref"] == p


async def test_single_cascade_deletes_dependents(module_admin, schema):
    p, q = await person(module_admin), await person(module_admin)
    gone = [await create(module_admin, "one_cascade", {"ref": p}) for _ in range(2)]
    kept = await create(module_admin, "one_cascade", {"ref": q})
    assert (await module_admin.delete(url("people", p))).status_code == 204
    for rid in gone:
        assert (await get(module_admin, "one_cascade", rid)).status_code == 404
    assert (await get(module_admin, "one_cascade", kept)).json()["ref"] == q


@pytest.mark.parametrize("collection", ["one_set_null", "one_default"])
async def test_single_set_null_clears_the_reference(module_admin, schema, collection):
    p, q = await person(module_admin), await person(module_admin)
    nulled = await create(module_admin, collection, {"ref": p, "note": "n"})
    kept = await create(module_admin, collection, {"ref": q})
    assert (await module_admin.delete(url("people", p))).status_code == 204
    record = (await get(module_admin, collection, nulled)).json()
    assert record["ref"] is None and record["note"] == "n"
    assert (await get(module_admin, collection, kept)).json()["ref"] == q


@pytest.mark.parametrize("collection", ["one_restrict", "one_required"])
async def test_single_restrict_refuses_the_delete(module_admin, schema, collection):
    p = await person(module_admin)
    rid = await create(module_admin, collection, {"ref": p})
    refused = await module_admin.delete(url("people", p))
    assert refused.status_code == 409
    assert_error_shape(refused)
    assert refused.json()["error"]["code"] == "still_referenced"
    assert collection in refused.json()["error"]["message"]
    assert (await get(module_admin, "people", p)).status_code == 200
    assert (await module_admin.delete(url(collection, rid))).status_code == 204
    assert (await module_admin.delete(url("people", p))).status_code == 204


async def test_multi_relation_checks_every_id(module_admin, schema):
    p, q = await person(module_admin), await person(module_admin)
    rid = await create(module_admin, "many_default", {"refs": [p, q]})
    assert (await get(module_admin, "many_default", rid)).json()["refs"] == [p, q]
    for refs in ([MISSING], [p, MISSING], [MISSING, q]):
        for response in (
            await module_admin.post(url("many_default"), json={"refs": refs}),
            await module_admin.patch(url("many_default", rid), json={"refs": refs}),
            await module_admin.put(url("many_default", MISSING), json={"refs": refs}),
        ):
            assert response.status_code == 400, response.text
            assert response.json()["error"]["fields"]["refs"]["code"] == "relation_not_found"
    assert (await get(module_admin, "many_default", rid)).json()["refs"] == [p, q]
    assert (await get(module_admin, "many_default", MISSING)).status_code == 404
    reordered = await module_admin.patch(url("many_default", rid), json={"refs": [q]})
    assert reordered.json()["refs"] == [q]


async def test_multi_cascade_deletes_referencing_records(module_admin, schema):
    p, q = await person(module_admin), await person(module_admin)
    only_p = await create(module_admin, "many_cascade", {"refs": [p]})
    both = await create(module_admin, "many_cascade", {"refs": [q, p]})
    only_q = await create(module_admin, "many_cascade", {"refs": [q]})
    empty = await create(module_admin, "many_cascade", {})
    assert (await module_admin.delete(url("people", p))).status_code == 204
    assert (await get(module_admin, "many_cascade", only_p)).status_code == 404
    assert (await get(module_admin, "many_cascade", both)).status_code == 404
    assert (await get(module_admin, "many_cascade", only_q)).json()["refs"] == [q]
    assert (await get(module_admin, "many_cascade", empty)).json()["refs"] == []


@pytest.mark.parametrize("collection", ["many_set_null", "many_default"])
async def test_multi_set_null_removes_the_id_from_lists(module_admin, schema, collection):
    p, q, r = await person(module_admin), await person(module_admin), await person(module_admin)
    first = await create(module_admin, collection, {"refs": [q, p, r], "note": "n"})
    second = await create(module_admin, collection, {"refs": [p]})
    assert (await module_admin.delete(url("people", p))).status_code == 204
    record = (await get(module_admin, collection, first)).json()
    assert record["refs"] == [q, r] and record["note"] == "n"
    assert (await get(module_admin, collection, second)).json()["refs"] == []


async def test_multi_restrict_refuses_the_delete(module_admin, schema):
    p, q = await person(module_admin), await person(module_admin)
    rid = await create(module_admin, "many_restrict", {"refs": [q, p]})
    refused = await module_admin.delete(url("people", p))
    assert refused.status_code == 409
    assert_error_shape(refused)
    assert refused.json()["error"]["code"] == "still_referenced"
    assert (await get(module_admin, "people", p)).status_code == 200
    assert (await get(module_admin, "many_restrict", rid)).json()["refs"] == [q, p]
    await module_admin.patch(url("many_restrict", rid), json={"refs": [q]})
    assert (await module_admin.delete(url("people", p))).status_code == 204


async def test_self_relation_cascades_down_a_tree(module_admin, schema):
    root = await create(module_admin, "nodes", {"name": "root"})
    child = await create(module_admin, "nodes", {"name": "child", "parent": root})
    grandchild = await create(module_admin, "nodes", {"name": "grandchild", "parent": child})
    other = await create(module_admin, "nodes", {"name": "other"})
    assert (await module_admin.delete(url("nodes", root))).status_code == 204
    for rid in (root, child, grandchild):
        assert (await get(module_admin, "nodes", rid)).status_code == 404
    assert (await get(module_admin, "nodes", other)).status_code == 200
