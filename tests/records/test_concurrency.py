"""Concurrent writes through the in-process app: the database decides, the API answers cleanly."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from tests.conftest import apply_schema
from tests.records.scenarios import assert_error_shape

SCHEMA = {
    "collections": {
        "people": {"fields": {"name": "text"}},
        "posts": {
            "fields": {
                "title": {"type": "text", "required": True},
                "slug": {"type": "text", "unique": True},
                "views": "integer",
                "fans": {"type": "relation", "collection": "people", "multiple": True},
            }
        },
    }
}
POSTS = "/api/collections/posts/records"


async def test_concurrent_creates_of_one_unique_value(admin):
    await apply_schema(admin, SCHEMA)
    responses = await asyncio.gather(
        *(admin.post(POSTS, json={"title": f"t{i}", "slug": "same"}) for i in range(20))
    )
    assert Counter(r.status_code for r in responses) == {201: 1, 409: 19}
    for response in responses:
        if response.status_code == 409:
            assert_error_shape(response)
            assert response.json()["error"]["fields"] == {
                "slug": {"code": "not_unique", "message": "is already taken"}
            }
    listed = (await admin.get(POSTS)).json()
    assert listed["total"] == 1


async def test_concurrent_upserts_of_one_new_id(admin):
    """PUT is idempotent: racing PUTs of a new id create it once and update it otherwise."""
    await apply_schema(admin, SCHEMA)
    rid = str(uuid.uuid4())
    responses = await asyncio.gather(
        *(admin.put(f"{POSTS}/{rid}", json={"title": "t", "views": i}) for i in range(10))
    )
    assert Counter(r.status_code for r in responses) == {201: 1, 200: 9}, [
        r.text for r in responses if r.status_code >= 400
    ]
    assert (await admin.get(POSTS)).json()["total"] == 1


async def test_concurrent_updates_of_one_record(admin):
    await apply_schema(admin, SCHEMA)
    record = (await admin.post(POSTS, json={"title": "t"})).json()
    responses = await asyncio.gather(
        *(admin.patch(f"{POSTS}/{record['id']}", json={"views": i}) for i in range(20))
    )
    assert all(r.status_code == 200 for r in responses)
    final = (await admin.get(f"{POSTS}/{record['id']}")).json()
    assert final["views"] in range(20)


async def test_deleting_a_target_while_it_is_being_referenced(admin):
    """The multi-relation trigger locks the ids it checks, so a record never keeps an id whose
    target is gone: each reference either fails or is removed again by the delete."""
    await apply_schema(admin, SCHEMA)
    people = "/api/collections/people/records"
    for _ in range(3):
        person = (await admin.post(people, json={"name": "p"})).json()["id"]
        creates = [admin.post(POSTS, json={"title": "t", "fans": [person]}) for _ in range(10)]
        responses = await asyncio.gather(*creates, admin.delete(f"{people}/{person}"))
        assert responses[-1].status_code == 204
        for response in responses[:-1]:
            assert response.status_code in (201, 400), response.text
            if response.status_code == 400:
                assert response.json()["error"]["fields"]["fans"]["code"] == "relation_not_found"
    listed = (await admin.get(POSTS, params={"per_page": 500})).json()["items"]
    live = {p["id"] for p in (await admin.get(people, params={"per_page": 500})).json()["items"]}
    assert all(set(post["fans"]) <= live for post in listed)
