"""Reconnecting with `since`: exactly the missed changes, in order, then live ones; `refetch` when
the missed changes are not all there any more (trimmed, too many, or not from this log)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from tests.realtime.conftest import Live, Serve

SCHEMA: dict[str, Any] = {
    "collections": {
        "posts": {"fields": {"title": "text", "n": "integer"}, "rules": {"list": "", "view": ""}},
        "notes": {
            "fields": {
                "text": "text",
                "owner": {"type": "relation", "collection": "users", "required": True},
            },
            "rules": {"list": "owner = auth.id", "view": "owner = auth.id"},
        },
    }
}


def strictly_increasing(ids: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(ids))


async def test_reconnecting_with_since_sends_exactly_what_was_missed(live: Live) -> None:
    await live.apply(SCHEMA)
    first = await live.connect()
    await first.subscribe("s", "posts")
    a = await live.create("posts", {"title": "a"})
    b = await live.create("posts", {"title": "b"})
    seen = await first.changes(2)
    last = seen[-1]["change_id"]
    await first.close()

    c = await live.create("posts", {"title": "c"})
    await live.update("posts", a["id"], {"title": "a2"})
    await live.delete("posts", b["id"])

    second = await live.connect()
    await second.subscribe("s", "posts", since=last)
    missed = await second.changes(3)
    assert [(m["action"], m["record"]["id"]) for m in missed] == [
        ("create", c["id"]),
        ("update", a["id"]),
        ("delete", b["id"]),
    ]
    assert missed[0]["record"] == await live.get("posts", c["id"])
    assert missed[1]["record"]["title"] == "a2"
    assert all(m["sub"] == "s" for m in missed)
    ids = [m["change_id"] for m in missed]
    assert strictly_increasing([last, *ids])
    await second.no_changes(0.2)

    d = await live.create("posts", {"title": "d"})
    [live_change] = await second.changes(1)
    assert live_change["record"]["id"] == d["id"]
    assert live_change["change_id"] > ids[-1]


async def test_nothing_missed_nothing_replayed(live: Live) -> None:
    await live.apply(SCHEMA)
    ws = await live.connect()
    await ws.subscribe("s", "posts")
    await live.create("posts", {"title": "a"})
    [seen] = await ws.changes(1)
    await ws.close()
    again = await live.connect()
    await again.subscribe("s", "posts", since=seen["change_id"])
    await again.no_changes(0.2)


async def test_replay_follows_the_rules_and_the_record(live: Live) -> None:
    await live.apply(SCHEMA)
    alice, bob = await live.user("alice"), await live.user("bob")
    start = await live.create("notes", {"text": "start", "owner": alice.id})
    ws = await live.connect(alice.token)
    await live.settle(ws)
    await ws.subscribe("all", "notes")
    await ws.subscribe("one", "notes", record=start["id"])
    await live.update("notes", start["id"], {"text": "seen"})
    got = await ws.changes(2)
    last = max(c["change_id"] for c in got)
    await ws.close()

    other = await live.create("notes", {"text": "alice's other", "owner": alice.id})
    await live.create("notes", {"text": "bob's", "owner": bob.id})
    await live.update("notes", start["id"], {"text": "missed"})

    ws = await live.connect(alice.token)
    await ws.subscribe("all", "notes", since=last)
    await ws.subscribe("one", "notes", record=start["id"], since=last)
    got = await ws.changes(3)
    by_sub = {
        sub: [(c["action"], c["record"]["id"]) for c in got if c["sub"] == sub]
        for sub in ("all", "one")
    }
    assert by_sub == {
        "all": [("create", other["id"]), ("update", start["id"])],
        "one": [("update", start["id"])],
    }
    await ws.no_changes(0.2)


async def test_replay_then_live_with_writes_in_between(live: Live) -> None:
    """Writes keep coming while a client resubscribes: every change once, in order."""
    await live.apply(SCHEMA)
    ws = await live.connect()
    await ws.subscribe("s", "posts")
    await live.create("posts", {"title": "x", "n": 0})
    [seen] = await ws.changes(1)
    await ws.close()

    total = 60
    written = asyncio.Event()

    async def writer() -> None:
        for n in range(1, total + 1):
            await live.create("posts", {"title": "x", "n": n})
            if n == total // 3:
                written.set()

    task = asyncio.create_task(writer())
    try:
        await written.wait()
        again = await live.connect()
        await again.subscribe("s", "posts", since=seen["change_id"])
        got = await again.changes(total, timeout=15)
    finally:
        await task
    assert [c["record"]["n"] for c in got] == list(range(1, total + 1))
    assert strictly_increasing([seen["change_id"], *(c["change_id"] for c in got)])
    await again.no_changes(0.2)


async def test_more_missed_than_max_replay_means_refetch(serve: Serve) -> None:
    live = await serve(realtime_max_replay=3)
    await live.apply(SCHEMA)
    ws = await live.connect()
    await ws.subscribe("s", "posts")
    await live.create("posts", {"title": "seen"})
    [seen] = await ws.changes(1)
    await ws.close()
    for n in range(5):
        await live.create("posts", {"title": "missed", "n": n})

    ws = await live.connect()
    await live.settle(ws)  # all five are out: none can come live
    await ws.send(
        {"type": "subscribe", "id": "s", "collection": "posts", "since": seen["change_id"]}
    )
    refetch = await ws.expect("refetch", id="s")
    assert refetch["change_id"] >= seen["change_id"] + 5
    await ws.no_changes(0.2)  # none of the missed ones: the client reloads over REST
    after = await live.create("posts", {"title": "after"})
    [change] = await ws.changes(1)
    assert change["record"]["id"] == after["id"]
    assert change["change_id"] > refetch["change_id"]

    # three missed changes are within the limit
    await ws.close()
    for n in range(3):
        await live.create("posts", {"title": "few", "n": n})
    ws = await live.connect()
    await ws.subscribe("s", "posts", since=change["change_id"])
    assert [c["record"]["n"] for c in await ws.changes(3)] == [0, 1, 2]


async def test_a_since_from_the_future_means_refetch_and_a_bad_one_is_refused(live: Live) -> None:
    await live.apply(SCHEMA)
    ws = await live.connect()
    await ws.send({"type": "subscribe", "id": "s", "collection": "posts", "since": 10**12})
    refetch = await ws.expect("refetch", id="s")
    assert refetch["change_id"] < 10**12
    created = await live.create("posts", {"title": "after"})
    [change] = await ws.changes(1)
    assert change["record"]["id"] == created["id"]
    assert change["change_id"] > refetch["change_id"]
    for i, since in enumerate([-1, "12", 1.5, True]):
        await ws.send({"type": "subscribe", "id": f"b{i}", "collection": "posts", "since": since})
        await ws.error("invalid_message")


async def test_a_since_older_than_the_retention_window_means_refetch(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The log is trimmed every minute; trim every 0.1 s here so a 1 s window passes quickly.
    from baas.realtime import hub

    monkeypatch.setattr(hub, "TRIM_EVERY_S", 0.1)
    live = await serve(realtime_retention_s=1)
    await live.apply(SCHEMA)
    ws = await live.connect()
    await ws.subscribe("s", "posts")
    await live.create("posts", {"title": "seen"})
    [seen] = await ws.changes(1)
    await ws.close()
    missed = await live.create("posts", {"title": "missed, then trimmed"})

    deadline = time.monotonic() + 10
    while await live.ctx.db.fetchval(
        "SELECT count(*) FROM baas.change_log WHERE record_id = $1", missed["id"]
    ):
        assert time.monotonic() < deadline, "the change log was not trimmed"
        await asyncio.sleep(0.1)

    ws = await live.connect()
    await ws.send(
        {"type": "subscribe", "id": "s", "collection": "posts", "since": seen["change_id"]}
    )
    refetch = await ws.expect("refetch", id="s")
    assert refetch["change_id"] > seen["change_id"]
    await ws.send({"type": "subscribe", "id": "z", "collection": "posts", "since": 0})
    await ws.expect("refetch", id="z")
    await ws.no_changes(0.2)
    after = await live.create("posts", {"title": "after"})
    got = await ws.changes(2)
    assert sorted(c["sub"] for c in got) == ["s", "z"]
    assert all(c["record"]["id"] == after["id"] for c in got)


async def test_a_replay_larger_than_the_queue_limit_goes_at_the_clients_pace(live: Live) -> None:
    """2,000 missed changes (about 700 KB of entries, over the 256 KB queue limit): the
    reconnecting client receives them all instead of being cut off as too slow."""
    await live.apply(
        {
            "collections": {
                "bulk": {"fields": {"n": "integer", "body": "text"}, "rules": {"list": ""}}
            }
        }
    )
    ws = await live.connect()
    await ws.subscribe("s", "bulk")
    for first in range(0, 2000, 100):
        body = [{"n": n, "body": "x" * 200} for n in range(first, first + 100)]
        await live.batch([{"op": "create", "collection": "bulk", "body": b} for b in body])
    seen = await ws.changes(2000, timeout=20)
    await ws.close()
    again = await live.connect()
    since = seen[0]["change_id"] - 1
    await again.send({"type": "subscribe", "id": "s", "collection": "bulk", "since": since})
    replayed = await again.changes(2000, timeout=20)
    assert [c["change_id"] for c in replayed] == [c["change_id"] for c in seen]
