"""What a committed transaction delivers: per record its net effect (the record as committed,
judged against the row before the transaction), the same live and on replay; nothing from a
rolled-back one; writes made outside the server within the poll delay; and, under concurrent
writers, each record's changes in commit order."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import pytest

from baas.realtime import changelog
from tests.conftest import SERVICE_KEY
from tests.realtime.clients import WsClient
from tests.realtime.conftest import ADMIN, Live, Serve

SCHEMA: dict[str, Any] = {
    "collections": {
        "docs": {
            "fields": {
                "title": "text",
                "public": {"type": "bool", "nullable": False, "default": False},
                "n": "integer",
            },
            "rules": {"list": "public = true", "view": "public = true"},
        },
    }
}


def _seen(changes: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return [(c["action"], c["record"]["id"], c["record"].get("title")) for c in changes]


async def _subscribed(live: Live, since: int | None = None) -> tuple[WsClient, WsClient]:
    """An anonymous subscriber (sees public docs) and an admin one (sees every doc)."""
    anon, admin = await live.connect(), await live.connect(SERVICE_KEY)
    extra = {} if since is None else {"since": since}
    await anon.subscribe("s", "docs", **extra)
    await admin.subscribe("s", "docs", **extra)
    return anon, admin


async def test_a_batch_delivers_its_net_effect_live_and_on_replay(live: Live) -> None:
    await live.apply(SCHEMA)
    private = await live.create("docs", {"title": "draft"})
    shown = await live.create("docs", {"title": "shown", "public": True})
    anon, admin = await _subscribed(live)
    await live.create("docs", {"title": "start", "public": True})
    start = (await anon.changes(1))[0]["change_id"]
    await admin.changes(1)
    temp = str(uuid.uuid4())

    await live.batch(
        [  # private -> public (with a secret title) -> private again: never visible
            {"op": "update", "collection": "docs", "id": private["id"], "body": {"public": True}},
            {"op": "update", "collection": "docs", "id": private["id"], "body": {"title": "x"}},
            {"op": "update", "collection": "docs", "id": private["id"], "body": {"public": False}},
            # created and deleted: never existed
            {"op": "create", "collection": "docs", "body": {"id": temp, "public": True}},
            {"op": "delete", "collection": "docs", "id": temp},
            # updated twice: one update, as committed
            {"op": "update", "collection": "docs", "id": shown["id"], "body": {"n": 1}},
            {"op": "update", "collection": "docs", "id": shown["id"], "body": {"title": "2"}},
        ]
    )
    end = await live.create("docs", {"title": "end", "public": True})

    live_anon, live_admin = await anon.changes(2), await admin.changes(3)
    assert _seen(live_anon) == [("update", shown["id"], "2"), ("create", end["id"], "end")]
    assert live_anon[0]["record"]["n"] == 1
    assert _seen(live_admin) == [
        ("update", private["id"], "x"),  # the admin sees the record as committed, once
        ("update", shown["id"], "2"),
        ("create", end["id"], "end"),
    ]
    assert "never" not in str(live_admin) and temp not in str(live_admin)
    await anon.no_changes(0.2)
    await admin.no_changes(0.05)

    again_anon, again_admin = await _subscribed(live, since=start)
    assert await again_anon.changes(2) == live_anon  # exactly what live delivery gave
    assert await again_admin.changes(3) == live_admin
    await again_anon.no_changes(0.2)


async def test_nothing_from_a_rolled_back_transaction_is_delivered(live: Live) -> None:
    await live.apply(SCHEMA)
    doc = await live.create("docs", {"title": "t", "public": True})
    anon, admin = await _subscribed(live)
    await live.create("docs", {"title": "start", "public": True})
    start = (await anon.changes(1))[0]["change_id"]
    await admin.changes(1)
    failed = await live.rest.post(
        "/api/batch",
        headers=ADMIN,
        json={
            "operations": [
                {"op": "update", "collection": "docs", "id": doc["id"], "body": {"title": "no"}},
                {"op": "create", "collection": "docs", "body": {"title": "no", "public": True}},
                {"op": "update", "collection": "docs", "id": str(uuid.uuid4()), "body": {}},
            ]
        },
    )
    assert failed.status_code == 404, failed.text
    end = await live.create("docs", {"title": "end", "public": True})
    for ws in (anon, admin):
        assert _seen(await ws.changes(1)) == [("create", end["id"], "end")]
        await ws.no_changes(0.1)
    for ws in await _subscribed(live, since=start):  # a replay: the same
        assert _seen(await ws.changes(1)) == [("create", end["id"], "end")]
        await ws.no_changes(0.1)


async def test_a_write_from_outside_the_server_arrives_within_the_poll_delay(
    serve: Serve,
) -> None:
    live = await serve(realtime_poll_ms=300)
    await live.apply(SCHEMA)
    anon, _admin = await _subscribed(live)
    conn = await asyncpg.connect(live.settings.database_url)  # as psql would: no bell rings
    try:
        began = time.monotonic()
        await conn.execute("INSERT INTO docs (title, public) VALUES ('from psql', true)")
        [change] = await anon.changes(1, timeout=5)
        took = time.monotonic() - began
    finally:
        await conn.close()
    assert (change["action"], change["record"]["title"]) == ("create", "from psql")
    assert took < 0.3 + 1.0, f"took {took:.2f}s with a 0.3 s poll"


async def test_the_log_keeps_commit_order_per_record_under_concurrent_writers(
    live: Live,
) -> None:
    await live.apply(SCHEMA)
    hot = await live.create("docs", {"title": "hot", "n": 0})
    others = [await live.create("docs", {"title": f"o{i}", "n": 0}) for i in range(4)]
    db = live.ctx.db
    after = await changelog.high_water(db)
    url = live.settings.database_url

    async def writer(k: int) -> None:
        conn = await asyncpg.connect(url)
        try:
            for _ in range(25):
                async with conn.transaction():  # an early transaction id, then the hot row
                    await conn.execute("UPDATE docs SET n = n + 1 WHERE id = $1", others[k]["id"])
                    await asyncio.sleep(0)
                    await conn.execute("UPDATE docs SET n = n + 1 WHERE id = $1", hot["id"])
        finally:
            await conn.close()

    await asyncio.gather(*(writer(k) for k in range(4)))
    seen: list[changelog.Change] = []
    while len(seen) < 200:
        batch = await changelog.next_changes(db, seen[-1].pos if seen else after, limit=13)
        assert batch, f"read {len(seen)} of 200 changes"
        seen += batch
    hot_values = [c.row("new")["n"] for c in seen if c.record_id == hot["id"]]  # type: ignore[index]
    assert hot_values == list(range(1, 101))
    positions = [c.pos for c in seen]
    assert positions == list(range(after + 1, after + 201))
    replayed = await changelog.replay(db, "docs", hot["id"], after, positions[-1], 1000)
    assert replayed is not None
    assert [c.pos for c in replayed] == [c.pos for c in seen if c.record_id == hot["id"]]


@pytest.mark.parametrize("ops", [1, 3])
async def test_each_transaction_is_numbered_once_however_many_rows_it_wrote(
    live: Live, ops: int
) -> None:
    await live.apply(SCHEMA)
    doc = await live.create("docs", {"title": "d", "public": True})
    anon, _admin = await _subscribed(live)
    await live.batch(
        [
            {"op": "update", "collection": "docs", "id": doc["id"], "body": {"n": i}}
            for i in range(ops)
        ]
    )
    [change] = await anon.changes(1)
    assert change["record"]["n"] == ops - 1
    await anon.no_changes(0.1)
