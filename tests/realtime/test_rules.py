"""Each subscriber sees only what its rules allow: the list rule for a collection, the view rule
for one record, narrowed by the subscription's filter."""

from __future__ import annotations

from typing import Any

import pytest

from baas.realtime import fanout
from tests.realtime.conftest import ANON, Live

OWNED = "owner = auth.id"
SCHEMA: dict[str, Any] = {
    "collections": {
        "notes": {
            "fields": {
                "text": "text",
                "owner": {"type": "relation", "collection": "users", "required": True},
            },
            "rules": {"list": OWNED, "view": OWNED, "create": "body.owner = auth.id"},
        },
        # not listable by anyone but admins; each owner views their own
        "docs": {
            "fields": {
                "text": "text",
                "owner": {"type": "relation", "collection": "users", "required": True},
            },
            "rules": {"list": None, "view": OWNED},
        },
        "locked": {"fields": {"title": "text"}},
        "posts": {
            "fields": {
                "title": "text",
                "views": "integer",
                "secret": {"type": "text", "hidden": True},
            },
            "rules": {"list": "", "view": ""},
        },
    }
}


async def test_each_subscriber_sees_only_its_own_records(live: Live) -> None:
    await live.apply(SCHEMA)
    alice, bob = await live.user("alice"), await live.user("bob")
    ws_alice = await live.connect(alice.token)
    ws_bob = await live.connect(bob.token)
    ws_anon = await live.connect()
    await ws_alice.subscribe("n", "notes")
    await ws_bob.subscribe("n", "notes")
    await ws_anon.subscribe("n", "notes")  # allowed (the rule is not locked); sees nothing

    a1 = await live.create("notes", {"text": "a1", "owner": alice.id})
    b1 = await live.create("notes", {"text": "b1", "owner": bob.id})
    a2 = await live.create("notes", {"text": "a2", "owner": alice.id}, alice.headers)
    await live.update("notes", b1["id"], {"text": "b1 edited"})
    await live.delete("notes", a1["id"])

    got_alice = await ws_alice.changes(3)
    assert [(c["action"], c["record"]["id"]) for c in got_alice] == [
        ("create", a1["id"]),
        ("create", a2["id"]),
        ("delete", a1["id"]),
    ]
    assert got_alice[1]["record"] == await live.get("notes", a2["id"], alice.headers)
    got_bob = await ws_bob.changes(2)
    assert [(c["action"], c["record"]["id"]) for c in got_bob] == [
        ("create", b1["id"]),
        ("update", b1["id"]),
    ]
    assert got_bob[1]["record"] == await live.get("notes", b1["id"], bob.headers)
    await ws_alice.no_changes(0.2)
    await ws_bob.no_changes(0.05)
    await ws_anon.no_changes(0.05)


async def test_a_service_key_sees_everything(live: Live) -> None:
    await live.apply(SCHEMA)
    alice = await live.user("alice")
    ws = await live.connect(live.settings.service_key)
    await ws.subscribe("n", "notes")
    await ws.subscribe("l", "locked")
    note = await live.create("notes", {"text": "a", "owner": alice.id})
    locked = await live.create("locked", {"title": "x"})
    first, second = await ws.changes(2)
    assert (first["sub"], first["record"]) == ("n", note)
    assert (second["sub"], second["record"]) == ("l", locked)


async def test_a_locked_collection_is_forbidden(live: Live) -> None:
    await live.apply(SCHEMA)
    alice = await live.user("alice")
    anon = await live.connect()
    await anon.send({"type": "subscribe", "id": "s", "collection": "locked"})
    await anon.error("forbidden", id="s")
    signed_in = await live.connect(alice.token)
    await signed_in.send({"type": "subscribe", "id": "s", "collection": "locked"})
    await signed_in.error("forbidden", id="s")
    # docs: no list rule (so no collection subscription), but a view rule for one record
    await signed_in.send({"type": "subscribe", "id": "d", "collection": "docs"})
    await signed_in.error("forbidden", id="d")
    await live.create("locked", {"title": "x"})
    await anon.no_changes(0.2)
    await signed_in.no_changes(0.05)


async def test_a_record_subscription_follows_the_view_rule(live: Live) -> None:
    await live.apply(SCHEMA)
    alice, bob = await live.user("alice"), await live.user("bob")
    mine = await live.create("docs", {"text": "mine", "owner": alice.id})
    theirs = await live.create("docs", {"text": "theirs", "owner": bob.id})
    ws = await live.connect(alice.token)
    await live.settle(ws)
    await ws.subscribe("mine", "docs", record=mine["id"])
    # Bob's doc: refused, or accepted and silent; never a change of it
    await ws.send(
        {"type": "subscribe", "id": "theirs", "collection": "docs", "record": theirs["id"]}
    )
    reply = await ws.recv()
    assert reply.get("id") == "theirs", reply
    assert reply["type"] == "subscribed" or reply["code"] in ("forbidden", "record_not_found")

    await live.update("docs", theirs["id"], {"text": "theirs, edited"})
    await live.update("docs", mine["id"], {"text": "mine, edited"})
    [change] = await ws.changes(1)
    assert (change["sub"], change["action"]) == ("mine", "update")
    assert change["record"] == await live.get("docs", mine["id"], alice.headers)
    await live.delete("docs", theirs["id"])
    await ws.no_changes(0.2)


async def test_a_record_subscription_stops_seeing_what_its_view_rule_no_longer_allows(
    live: Live,
) -> None:
    await live.apply(SCHEMA)
    alice, bob = await live.user("alice"), await live.user("bob")
    doc = await live.create("docs", {"text": "v1", "owner": alice.id})
    ws = await live.connect(alice.token)
    await live.settle(ws)
    await ws.subscribe("d", "docs", record=doc["id"])
    await live.update("docs", doc["id"], {"owner": bob.id, "text": "now Bob's"})
    [change] = await ws.changes(1)
    assert change["action"] == "leave"
    assert change["record"]["text"] == "v1"  # as Alice last could see it, nothing newer
    assert change["record"]["owner"] == alice.id
    await live.update("docs", doc["id"], {"text": "Bob edits"})
    await ws.no_changes(0.2)
    await live.update("docs", doc["id"], {"owner": alice.id})
    [back] = await ws.changes(1)
    assert back["action"] == "enter"
    assert back["record"] == await live.get("docs", doc["id"], alice.headers)


async def test_a_filter_narrows_a_subscription(live: Live) -> None:
    await live.apply(SCHEMA)
    ws = await live.connect()
    await ws.subscribe("hot", "posts", filter="views > 10")
    await ws.subscribe("all", "posts")
    low = await live.create("posts", {"title": "low", "views": 5})
    high = await live.create("posts", {"title": "high", "views": 20})
    got = await ws.changes(3)
    assert [(c["sub"], c["record"]["id"]) for c in got if c["sub"] == "hot"] == [
        ("hot", high["id"])
    ]
    assert sorted(c["record"]["id"] for c in got if c["sub"] == "all") == sorted(
        [low["id"], high["id"]]
    )
    hot = next(c for c in got if c["sub"] == "hot")
    assert hot["action"] == "create"
    assert hot["record"] == await live.get("posts", high["id"], ANON)


async def test_a_filter_with_auth_and_a_rule_together(live: Live) -> None:
    await live.apply(SCHEMA)
    alice = await live.user("alice")
    ws = await live.connect(alice.token)
    await ws.subscribe("s", "notes", filter="text ILIKE '%urgent%'")
    await live.create("notes", {"text": "urgent but not hers", "owner": (await live.user()).id})
    await live.create("notes", {"text": "hers, not pressing", "owner": alice.id})
    urgent = await live.create("notes", {"text": "hers and URGENT", "owner": alice.id})
    [change] = await ws.changes(1)
    assert change["record"]["id"] == urgent["id"]
    await ws.no_changes(0.2)


async def test_invalid_filters_are_refused(live: Live) -> None:
    await live.apply(SCHEMA)
    ws = await live.connect()
    await ws.send(
        {"type": "subscribe", "id": "bad", "collection": "posts", "filter": "views >>> 1"}
    )
    error = await ws.error("invalid_filter", id="bad")
    assert "position" in error, error
    for i, bad in enumerate(
        [
            "nope = 1",  # unknown field
            "secret = 'x'",  # hidden fields cannot be named
            "views = 'abc'",  # a value that does not fit
            "views > 1; DROP TABLE posts",
            "(SELECT 1) = 1",
        ]
    ):
        await ws.send({"type": "subscribe", "id": f"b{i}", "collection": "posts", "filter": bad})
        await ws.error("invalid_filter", id=f"b{i}")
    await ws.subscribe("bad", "posts", filter="views > 1")  # the refused id is free
    await live.create("posts", {"title": "x", "views": 2})
    [change] = await ws.changes(1)
    assert change["sub"] == "bad"


async def test_a_batch_judged_in_several_statements_gives_what_one_would(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one change per statement: each subscriber's verdicts come from several statements
    monkeypatch.setattr(fanout, "MAX_PAIRS", 2)
    await live.apply(SCHEMA)
    alice, bob = await live.user("alice"), await live.user("bob")
    ws_alice, ws_bob = await live.connect(alice.token), await live.connect(bob.token)
    await ws_alice.subscribe("mine", "notes")
    await ws_bob.subscribe("mine", "notes")
    note = await live.create("notes", {"text": "n", "owner": alice.id})
    assert (await ws_alice.changes(1))[0]["action"] == "create"
    results = await live.batch(  # one transaction: one batch of changes for the hub
        [
            {"op": "create", "collection": "notes", "body": {"text": "b", "owner": bob.id}},
            {"op": "update", "collection": "notes", "id": note["id"], "body": {"owner": bob.id}},
            {"op": "create", "collection": "notes", "body": {"text": "a", "owner": alice.id}},
            {"op": "update", "collection": "notes", "id": note["id"], "body": {"text": "m"}},
        ]
    )
    b, a = results[0]["body"]["id"], results[2]["body"]["id"]
    got_alice = await ws_alice.changes(2)  # the net effect: the note left alice, once
    assert [(c["action"], c["record"]["id"]) for c in got_alice] == [
        ("create", a),
        ("leave", note["id"]),
    ]
    got_bob = await ws_bob.changes(2)
    assert [(c["action"], c["record"]["id"]) for c in got_bob] == [
        ("create", b),
        ("enter", note["id"]),
    ]
    assert got_bob[1]["record"]["text"] == "m"
    changes = [c["change_id"] for c in got_bob]
    assert changes == sorted(changes)
    await ws_alice.no_changes(0.2)
    await ws_bob.no_changes(0.05)


async def test_subscribers_alike_but_for_their_subscription_ids_each_get_their_own(
    live: Live,
) -> None:
    await live.apply(SCHEMA)
    clients = [await live.connect() for _ in range(4)]
    for n, ws in enumerate(clients):
        await ws.subscribe(f"feed-{n % 2}", "posts")  # two ids, two subscribers each
    post = await live.create("posts", {"title": "one for all"})
    for n, ws in enumerate(clients):
        [change] = await ws.changes(1)
        assert change["sub"] == f"feed-{n % 2}"
        assert change["record"] == post
