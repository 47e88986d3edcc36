"""Channels: `rooms/<id>` may be joined by whoever may view that room; members see each other
come and go (presence) and broadcast to each other, never to themselves."""

from __future__ import annotations

from typing import Any

from tests.realtime.clients import WsClient
from tests.realtime.conftest import Live, Serve, User

MEMBERS = "owner = auth.id OR auth.id = ANY(members)"
ROOMS: dict[str, Any] = {
    "collections": {
        "rooms": {
            "fields": {
                "name": "text",
                "owner": {"type": "relation", "collection": "users", "required": True},
                "members": {"type": "relation", "collection": "users", "multiple": True},
            },
            "rules": {"list": MEMBERS, "view": MEMBERS},
        },
        "lobby": {"fields": {"name": "text"}, "rules": {"list": "", "view": ""}},
    }
}


async def room_with(live: Live, owner: User, *members: User) -> str:
    await live.apply(ROOMS)
    room = await live.create(
        "rooms", {"name": "R", "owner": owner.id, "members": [m.id for m in members]}
    )
    for user in (owner, *members):  # the rule admits them over REST too
        await live.get("rooms", room["id"], user.headers)
    return f"rooms/{room['id']}"


async def join(
    ws: WsClient, channel: str, presence: dict[str, Any] | None = None
) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "join", "channel": channel}
    if presence is not None:
        msg["presence"] = presence
    return await ws.request(msg, "joined", channel=channel)


def by_member(members: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["member"]: m for m in members}


async def test_members_see_each_other_and_broadcast(live: Live) -> None:
    alice, bob = await live.user("alice"), await live.user("bob")
    channel = await room_with(live, alice, bob)
    ws_a = await live.connect(alice.token)
    ws_b = await live.connect(bob.token)

    joined_a = await join(ws_a, channel, {"name": "Alice", "status": "here"})
    me_a = joined_a["me"]
    # the first one in: nobody else there (whether `members` lists yourself is left open)
    assert all(m["member"] == me_a and m["user"] == alice.id for m in joined_a["members"])
    joined_b = await join(ws_b, channel, {"name": "Bob"})
    me_b = joined_b["me"]
    assert me_a != me_b
    members = by_member(joined_b["members"])
    assert members[me_a] == {
        "member": me_a,
        "user": alice.id,
        "presence": {"name": "Alice", "status": "here"},
    }
    assert set(members) <= {me_a, me_b}
    assert members.get(me_b, {"user": bob.id})["user"] == bob.id

    came = await ws_a.expect("presence", channel=channel)
    assert came["joined"] == [{"member": me_b, "user": bob.id, "presence": {"name": "Bob"}}]
    assert not came.get("left")

    payload = {"text": "typing...", "n": [1, 2.5, None]}
    await ws_a.send(
        {"type": "broadcast", "channel": channel, "event": "typing", "payload": payload}
    )
    got = await ws_b.expect("broadcast", channel=channel, event="typing", payload=payload)
    assert got["from"] == {"member": me_a, "user": alice.id}
    await ws_a.nothing(0.2)  # never to the sender

    await ws_b.send({"type": "broadcast", "channel": channel, "event": "hi", "payload": {}})
    back = await ws_a.expect("broadcast", event="hi")
    assert back["from"] == {"member": me_b, "user": bob.id}

    await ws_b.request({"type": "leave", "channel": channel}, "left", channel=channel)
    gone = await ws_a.expect("presence", channel=channel)
    assert [m["member"] for m in gone["left"]] == [me_b]
    assert not gone.get("joined")
    await ws_b.send({"type": "broadcast", "channel": channel, "event": "x", "payload": {}})
    await ws_b.error("not_joined")
    await ws_a.nothing(0.2)


async def test_a_member_that_disconnects_leaves(live: Live) -> None:
    alice, bob = await live.user("alice"), await live.user("bob")
    channel = await room_with(live, alice, bob)
    ws_a = await live.connect(alice.token)
    await join(ws_a, channel)
    ws_b = await live.connect(bob.token)
    me_b = (await join(ws_b, channel))["me"]
    await ws_a.expect("presence", channel=channel)
    await ws_b.close()
    gone = await ws_a.expect("presence", channel=channel)
    assert [m["member"] for m in gone["left"]] == [me_b]


async def test_who_may_not_view_the_room_may_not_join(live: Live) -> None:
    alice, carol = await live.user("alice"), await live.user("carol")
    channel = await room_with(live, alice)
    ws_a = await live.connect(alice.token)
    await join(ws_a, channel)
    ws_c = await live.connect(carol.token)
    visitor = await live.connect()
    for ws in (ws_c, visitor):
        await ws.send({"type": "join", "channel": channel})
        await ws.error("channel_not_found")
        await ws.send({"type": "broadcast", "channel": channel, "event": "x", "payload": {}})
        await ws.error("not_joined")
    for bad in [
        "rooms/01900000-0000-7000-8000-000000000001",  # no such room
        "rooms/not-an-id",
        "rooms",
        "nope/01900000-0000-7000-8000-000000000001",
        channel + "/more",
    ]:
        await ws_c.send({"type": "join", "channel": bad})
        await ws_c.error("channel_not_found")
    await ws_a.nothing(0.2)  # Alice saw nobody come


async def test_a_public_record_is_a_channel_for_everyone(live: Live) -> None:
    await live.apply(ROOMS)
    lobby = await live.create("lobby", {"name": "lobby"})
    channel = f"lobby/{lobby['id']}"
    visitor = await live.connect()
    alice = await live.user("alice")
    ws_a = await live.connect(alice.token)
    me_v = (await join(visitor, channel))["me"]
    await join(ws_a, channel)
    came = await visitor.expect("presence", channel=channel)
    assert came["joined"][0]["user"] == alice.id
    await visitor.send({"type": "broadcast", "channel": channel, "event": "wave", "payload": 1})
    got = await ws_a.expect("broadcast", event="wave", payload=1)
    assert got["from"]["member"] == me_v
    assert got["from"].get("user") is None


async def test_channel_limits(serve: Serve) -> None:
    live = await serve(realtime_max_channels=1)
    alice = await live.user("alice")
    channel = await room_with(live, alice)
    other = await live.create("rooms", {"name": "S", "owner": alice.id})
    ws = await live.connect(alice.token)
    await join(ws, channel)
    await ws.send({"type": "join", "channel": f"rooms/{other['id']}"})
    await ws.error("too_many_channels")
    await ws.send({"type": "join", "channel": channel, "presence": {"pad": "x" * 2000}})
    await ws.error("too_large")
    big = {"pad": "x" * 5000}
    await ws.send({"type": "broadcast", "channel": channel, "event": "big", "payload": big})
    await ws.error("too_large")
    await ws.request({"type": "leave", "channel": channel}, "left", channel=channel)
    await join(ws, f"rooms/{other['id']}")
    await ws.send({"type": "leave", "channel": channel})
    await ws.error("not_joined")


async def test_members_across_two_instances(serve: Serve) -> None:
    """Two servers on one database (here in one process, each with its own hub and LISTEN)."""
    one = await serve()
    two = await serve()
    alice, bob = await one.user("alice"), await one.user("bob")
    channel = await room_with(one, alice, bob)
    ws_a = await one.connect(alice.token)
    ws_b = await two.connect(bob.token)
    me_a = (await join(ws_a, channel, {"on": 1}))["me"]
    joined_b = await join(ws_b, channel, {"on": 2})
    assert by_member(joined_b["members"])[me_a]["presence"] == {"on": 1}
    came = await ws_a.expect("presence", channel=channel)
    assert came["joined"][0]["user"] == bob.id
    await ws_b.send({"type": "broadcast", "channel": channel, "event": "e", "payload": {"k": "v"}})
    got = await ws_a.expect("broadcast", event="e", payload={"k": "v"})
    assert got["from"]["user"] == bob.id
    await ws_b.close()
    gone = await ws_a.expect("presence", channel=channel)
    assert [m["member"] for m in gone["left"]] == [joined_b["me"]]
