"""Changes reach subscribers: creates, updates and deletes of a collection or of one record, in
commit order with increasing change ids, each record exactly as REST returns it."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from tests.realtime.conftest import ANON, Live

POSTS: dict[str, Any] = {
    "collections": {
        "posts": {
            "fields": {
                "title": {"type": "text", "required": True},
                "views": "integer",
                "score": "number",
                "published": {"type": "bool", "nullable": False, "default": False},
                "published_at": "datetime",
                "day": "date",
                "tags": {"type": "select", "values": ["news", "tech", "life"], "multiple": True},
                "meta": "json",
            },
            "rules": {"list": "", "view": ""},
        }
    }
}
FULL = {
    "title": "Hello",
    "views": 3,
    "score": 1.5,
    "published": True,
    "published_at": "2026-01-31T12:00:00.123456+02:00",
    "day": "2026-02-01",
    "tags": ["news", "tech"],
    "meta": {"nested": {"list": [1, 2.5, "x", None, True]}, "big": 12345678901234},
}


def increasing(ids: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(ids))


async def test_collection_subscription_sees_create_update_delete(live: Live) -> None:
    await live.apply(POSTS)
    ws = await live.connect()
    subscribed = await ws.subscribe("s1", "posts")
    assert isinstance(subscribed["change_id"], int)

    created = await live.create("posts", FULL)
    [create] = await ws.changes(1)
    assert create["sub"] == "s1"
    assert create["action"] == "create"
    assert create["collection"] == "posts"
    assert create["record"] == await live.get("posts", created["id"], ANON)
    assert create["record"] == created  # the same JSON: datetimes in UTC with Z, numbers, json
    assert create["record"]["published_at"] == "2026-01-31T10:00:00.123456Z"
    assert create["change_id"] > subscribed["change_id"]

    await live.update("posts", created["id"], {"views": 4, "score": 0.1, "meta": [1, {"a": 2}]})
    [update] = await ws.changes(1)
    current = await live.get("posts", created["id"], ANON)
    assert update["action"] == "update"
    assert update["record"] == current
    assert update["record"]["score"] == 0.1
    assert update["record"]["updated"] > create["record"]["updated"]

    await live.delete("posts", created["id"])
    [delete] = await ws.changes(1)
    assert delete["action"] == "delete"
    assert delete["sub"] == "s1"
    assert delete["record"] == current  # as it was before
    assert increasing([create["change_id"], update["change_id"], delete["change_id"]])
    await ws.no_changes(0.2)


async def test_record_subscription_sees_only_that_record(live: Live) -> None:
    await live.apply(POSTS)
    one = await live.create("posts", {"title": "one"})
    other = await live.create("posts", {"title": "other"})
    ws = await live.connect()
    await live.settle(ws)  # so the subscription starts after both creates
    await ws.subscribe("r", "posts", record=one["id"])

    await live.update("posts", other["id"], {"title": "not this one"})
    await live.update("posts", one["id"], {"title": "this one"})
    await live.create("posts", {"title": "nor a new one"})
    [update] = await ws.changes(1)
    assert update["action"] == "update"
    assert update["sub"] == "r"
    assert update["record"] == await live.get("posts", one["id"], ANON)
    assert update["record"]["title"] == "this one"

    before = update["record"]
    await live.delete("posts", other["id"])
    await live.delete("posts", one["id"])
    [delete] = await ws.changes(1)
    assert delete["action"] == "delete"
    assert delete["record"] == before
    assert delete["change_id"] > update["change_id"]
    await ws.no_changes(0.2)


async def test_a_record_subscription_sees_the_record_created_with_its_id(live: Live) -> None:
    await live.apply(POSTS)
    record_id = "01900000-0000-7000-8000-000000000001"
    ws = await live.connect()
    await ws.subscribe("r", "posts", record=record_id)
    created = await live.create("posts", {"id": record_id, "title": "offline first"})
    [create] = await ws.changes(1)
    assert create["action"] == "create"
    assert create["record"] == created


async def test_a_transaction_delivers_its_net_effect_per_record_in_order(live: Live) -> None:
    await live.apply(POSTS)
    ws = await live.connect()
    await ws.subscribe("s", "posts")
    first = await live.create("posts", {"title": "first"})
    [created] = await ws.changes(1)
    gone = str(uuid.uuid4())
    results = await live.batch(
        [
            {"op": "create", "collection": "posts", "body": {"title": "a"}},
            {"op": "update", "collection": "posts", "id": first["id"], "body": {"views": 9}},
            {"op": "create", "collection": "posts", "body": {"title": "b"}},
            {"op": "update", "collection": "posts", "id": first["id"], "body": {"views": 10}},
            {"op": "create", "collection": "posts", "body": {"id": gone, "title": "never seen"}},
            {"op": "delete", "collection": "posts", "id": first["id"]},
            {"op": "delete", "collection": "posts", "id": gone},
        ]
    )
    marker = await live.create("posts", {"title": "marker"})
    got = await ws.changes(4)
    # one event per record: `first` updated twice then deleted is one delete of the record as
    # subscribers knew it; nothing for `gone`, created and deleted by the same transaction
    assert [(c["action"], c["record"]["id"]) for c in got] == [
        ("create", results[0]["body"]["id"]),
        ("create", results[2]["body"]["id"]),
        ("delete", first["id"]),
        ("create", marker["id"]),
    ]
    assert got[2]["record"] == created["record"]
    assert increasing([created["change_id"], *(c["change_id"] for c in got)])
    assert got[0]["record"] == results[0]["body"]
    assert "never seen" not in str(got)


async def test_each_subscription_gets_its_own_entry(live: Live) -> None:
    await live.apply(POSTS)
    ws = await live.connect()
    await ws.subscribe("all", "posts")
    created = await live.create("posts", {"title": "x"})
    first = await ws.change_for("all")  # the create is out: "mine" starts after it
    await ws.subscribe("mine", "posts", record=created["id"])
    await live.update("posts", created["id"], {"title": "y"})
    second, third = await ws.changes(2)
    assert (first["sub"], first["action"]) == ("all", "create")
    assert {second["sub"], third["sub"]} == {"all", "mine"}
    assert second["change_id"] == third["change_id"]
    assert second["record"] == third["record"] == await live.get("posts", created["id"])


async def test_unsubscribe_stops_changes(live: Live) -> None:
    await live.apply(POSTS)
    ws = await live.connect()
    await ws.subscribe("s1", "posts")
    await ws.subscribe("s2", "posts")
    await ws.request({"type": "unsubscribe", "id": "s1"}, "unsubscribed", id="s1")
    await live.create("posts", {"title": "x"})
    [change] = await ws.changes(1)
    assert change["sub"] == "s2"
    await ws.no_changes(0.2)
    await ws.send({"type": "unsubscribe", "id": "s1"})
    await ws.error("subscription_not_found", id="s1")
    # the id is free again
    await ws.subscribe("s1", "posts")


async def test_refusals_name_the_subscription_and_replies_carry_the_ref(live: Live) -> None:
    await live.apply(POSTS)
    ws = await live.connect()
    await ws.send({"type": "subscribe", "id": "s1", "collection": "posts", "ref": "r-1"})
    await ws.expect("subscribed", id="s1", ref="r-1")
    await ws.send({"type": "subscribe", "id": "s2", "collection": "nope", "ref": "r-2"})
    await ws.error("collection_not_found", id="s2", ref="r-2")
    await ws.send({"type": "subscribe", "id": "s3", "collection": "posts", "record": "not-a-uuid"})
    await ws.error("invalid_parameter", id="s3")
    await ws.send({"type": "ping", "ref": "r-3"})
    await ws.expect("pong", ref="r-3")
    # no refusal took its id: both can subscribe now
    await ws.subscribe("s2", "posts")
    await ws.subscribe("s3", "posts")
