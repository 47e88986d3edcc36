"""Limits and liveness: subscriptions per connection, message size and rate, connections per
user and address, malformed messages, pings both ways and the idle timeout."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from websockets.exceptions import ConnectionClosed

from tests.realtime.clients import WsClient
from tests.realtime.conftest import Live, Serve

POSTS: dict[str, Any] = {
    "collections": {"posts": {"fields": {"title": "text"}, "rules": {"list": "", "view": ""}}}
}


async def test_too_many_and_duplicate_subscriptions(serve: Serve) -> None:
    live = await serve(realtime_max_subscriptions=3)
    await live.apply(POSTS)
    ws = await live.connect()
    for i in range(3):
        await ws.subscribe(f"s{i}", "posts")
    await ws.send({"type": "subscribe", "id": "s3", "collection": "posts"})
    await ws.error("too_many_subscriptions", id="s3")
    await ws.request({"type": "unsubscribe", "id": "s0"}, "unsubscribed", id="s0")
    await ws.subscribe("s3", "posts")
    await ws.send({"type": "subscribe", "id": "s1", "collection": "posts", "filter": "title = 'x'"})
    await ws.error("duplicate_subscription", id="s1")
    await live.create("posts", {"title": "y"})  # s1 is unchanged (no filter)
    assert sorted(c["sub"] for c in await ws.changes(3)) == ["s1", "s2", "s3"]
    await ws.no_changes(0.2)


async def test_malformed_messages_are_refused_and_the_connection_goes_on(live: Live) -> None:
    await live.apply(POSTS)
    ws = await live.connect()
    for raw in [
        "not json",
        "[1, 2]",
        '"ping"',
        "{}",
        '{"type": 1}',
        '{"type": "nope"}',
        '{"type": "subscribe", "collection": "posts"}',  # no id
        '{"type": "subscribe", "id": "", "collection": "posts"}',
        json.dumps({"type": "subscribe", "id": "x" * 65, "collection": "posts"}),
        '{"type": "subscribe", "id": "s", "collection": ["posts"]}',
        '{"type": "auth"}',
        '{"type": "ping", "ref": 7}',
    ]:
        await ws.send_raw(raw)
        error = await ws.error("invalid_message")
        assert error["message"], error
    await ws.send_raw(b'{"type": "ping"}')  # a binary frame
    await ws.error("invalid_message")
    await ws.request({"type": "ping"}, "pong")
    await ws.subscribe("s", "posts")
    await live.create("posts", {"title": "still working"})
    assert len(await ws.changes(1)) == 1


async def test_a_message_over_the_size_limit_closes_with_1009(serve: Serve) -> None:
    live = await serve(realtime_max_message_bytes=1024)
    ws = await live.connect()
    await ws.request({"type": "ping", "ref": "x" * 60}, "pong")  # small ones are fine
    await ws.send({"type": "ping", "ref": "r", "pad": "x" * 2000})
    assert await ws.closed(timeout=2) == 1009
    # the limit is in bytes: under it in characters is not enough
    ws = await live.connect()
    message = json.dumps({"type": "ping", "pad": "\u00e9" * 700}, ensure_ascii=False)
    assert len(message) < 1024 < len(message.encode())
    await ws.send_raw(message)
    assert await ws.closed(timeout=2) == 1009


async def test_too_many_connections_of_one_user(serve: Serve) -> None:
    live = await serve(realtime_max_connections_per_user=2)
    alice, bob = await live.user("alice"), await live.user("bob")
    first = await live.connect(alice.token)
    await live.connect(alice.token)
    third = await live.connect()
    await third.send({"type": "auth", "token": alice.token})
    assert await third.closed() == 4030
    await live.connect(bob.token)  # another user is fine
    await first.request({"type": "ping"}, "pong")  # the first ones stay

    await first.close()
    deadline = time.monotonic() + 5
    while True:  # the server notices the closed one, then Alice may connect again
        ws = await live.connect()
        await ws.send({"type": "auth", "token": alice.token})
        try:
            await ws.expect("auth_ok", timeout=2)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the closed connection still counts"
            await asyncio.sleep(0.1)


async def test_too_many_connections_from_one_address(serve: Serve) -> None:
    live = await serve(realtime_max_connections_per_ip=3)
    clients = [await live.connect() for _ in range(3)]
    extra = await live.connect()
    assert await extra.closed() == 4030
    for ws in clients:
        await ws.request({"type": "ping"}, "pong")


async def test_too_many_messages_a_second_close_with_4029(serve: Serve) -> None:
    live = await serve(realtime_max_messages_per_s=2)  # 20 over 10 s
    ws = await live.connect()
    for _ in range(60):
        try:
            await ws.send({"type": "ping"})
        except ConnectionClosed:
            break
    assert await ws.closed() == 4029


async def test_server_pings_answered_keep_the_connection_open(serve: Serve) -> None:
    live = await serve(realtime_ping_interval_s=0.1, realtime_idle_timeout_s=0.6)
    ws = await live.connect()  # answers pings with pongs
    started = time.monotonic()
    while ws.pings < 3 or time.monotonic() - started < 1:  # longer than the idle timeout
        assert time.monotonic() - started < 5, f"{ws.pings} pings in 5 s"
        await ws.no_changes(0.1)
    await ws.request({"type": "ping"}, "pong")


async def test_a_silent_client_is_closed_with_4408(serve: Serve) -> None:
    live = await serve(realtime_ping_interval_s=0.2, realtime_idle_timeout_s=0.5)
    ws = await WsClient.open(live.ws_url, auto_pong=False)
    try:
        started = time.monotonic()
        assert await ws.closed(timeout=5) == 4408
        assert time.monotonic() - started >= 0.45
    finally:
        await ws.close()
