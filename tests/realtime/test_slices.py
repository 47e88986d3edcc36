"""Fan-out in slices: other work gets turns of the event loop between them, and a fan-out cut
into slices at every subscriber still gives each subscription exactly its changes, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from baas.realtime import slices
from baas.realtime.wire import Flusher
from tests.realtime.conftest import Live

SCHEMA: dict[str, Any] = {
    "collections": {
        "notes": {
            "fields": {"n": "integer", "owner": {"type": "relation", "collection": "users"}},
            "rules": {"list": "owner = auth.id OR n >= 100", "view": ""},
        }
    }
}


@pytest.fixture
def every_item(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of one item: every loop over subscribers or connections yields at every step."""
    monkeypatch.setattr(slices, "SLICE_S", 0.0)
    monkeypatch.setattr(slices, "CHECK_EVERY", 1)


class _Outbox:
    """A connection's outbox as the flusher sees it: it notes when it was drained."""

    def __init__(self, name: int, drained: list[Any], done: asyncio.Event) -> None:
        self.name = name
        self.drained = drained
        self.done = done

    def flush(self, flusher: Flusher) -> None:
        self.drained.append(self.name)
        self.done.set()


async def test_the_flusher_lets_other_callbacks_run_between_its_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slices, "SLICE_S", 0.0)  # each slice is CHECK_EVERY outboxes
    flusher, drained, done = Flusher(), [], asyncio.Event()
    count = 10 * slices.CHECK_EVERY
    for name in range(count):
        flusher.mark(_Outbox(name, drained, done if name == count - 1 else asyncio.Event()))
    asyncio.get_running_loop().call_soon(drained.append, "request")  # ready after the marks
    await asyncio.wait_for(done.wait(), 5)
    turn = drained.index("request")
    assert 0 < turn <= slices.CHECK_EVERY  # its turn came after the first slice, not the last
    assert [d for d in drained if d != "request"] == list(range(count))


async def test_a_fan_out_sliced_at_every_subscriber_delivers_each_change_once_in_order(
    live: Live, every_item: None
) -> None:
    await live.apply(SCHEMA)
    users = [await live.user(f"u{k}") for k in range(4)]
    clients = [await live.connect(u.token) for u in users for _ in range(3)]
    for client in clients:
        await client.subscribe("all", "notes")  # the rule: own notes, and n >= 100
        await client.subscribe("big", "notes", filter="n >= 200")
    written = []
    for k, user in enumerate(users):
        written.append(await live.create("notes", {"n": k, "owner": user.id}))
    made = await live.batch(
        [{"op": "create", "collection": "notes", "body": {"n": 100 + 50 * i}} for i in range(6)]
    )
    written += [r["body"] for r in made]

    for index, client in enumerate(clients):
        owner = users[index // 3].id
        seen_all = [r["n"] for r in written if r["owner"] == owner or r["n"] >= 100]
        seen_big = [r["n"] for r in written if r["n"] >= 200]
        got = await client.changes(len(seen_all) + len(seen_big))
        assert [c["record"]["n"] for c in got if c["sub"] == "all"] == seen_all
        assert [c["record"]["n"] for c in got if c["sub"] == "big"] == seen_big
        ids = [c["change_id"] for c in got if c["sub"] == "all"]
        assert ids == sorted(set(ids))
        await client.no_changes(0.05)
