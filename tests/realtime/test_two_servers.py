"""Two real `baas serve` processes on one database deliver each other's writes to their
WebSocket subscribers, with the same change ids, and a write from outside both within the poll
delay; channel members meet across them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.servers import Server, running
from tests.realtime.clients import WsClient
from tests.realtime.conftest import ADMIN, PASSWORD, PUBLIC_URL

pytestmark = pytest.mark.slow

SCHEMA: dict[str, Any] = {
    "collections": {
        "posts": {"fields": {"title": "text"}, "rules": {"list": "", "view": ""}},
        "rooms": {
            "fields": {"members": {"type": "relation", "collection": "users", "multiple": True}},
            "rules": {"list": "auth.id = ANY(members)", "view": "auth.id = ANY(members)"},
        },
    }
}


@pytest.fixture
def pair(database_url: str, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    # one install behind one public URL: the issuer of its access tokens
    env = {"BAAS_DATABASE_URL": database_url, "BAAS_PUBLIC_URL": PUBLIC_URL}
    with running(tmp_path, env, name="a") as a, running(tmp_path, env, name="b") as b:
        yield a, b


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


async def rest(stack: AsyncExitStack, server: Server) -> httpx.AsyncClient:
    return await stack.enter_async_context(
        httpx.AsyncClient(base_url=server.url, headers=ADMIN, timeout=10)
    )


async def ws(stack: AsyncExitStack, server: Server, token: str | None = None) -> WsClient:
    client = await WsClient.open(f"ws://127.0.0.1:{server.port}/api/realtime")
    stack.push_async_callback(client.close)
    if token is not None:
        await client.request({"type": "auth", "token": token}, "auth_ok")
    return client


async def knows_posts(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 10
    while "posts" not in (await client.get("/api/admin/collections")).json()["collections"]:
        assert time.monotonic() < deadline, "the schema change did not reach the other server"
        await asyncio.sleep(0.05)


async def test_each_server_delivers_the_others_writes(
    pair: tuple[Server, Server], stack: AsyncExitStack
) -> None:
    a, b = pair
    rest_a, rest_b = await rest(stack, a), await rest(stack, b)
    applied = await rest_a.post("/api/admin/schema/apply", json={"document": SCHEMA})
    assert applied.status_code == 200, applied.text
    await knows_posts(rest_b)
    ws_a, ws_b = await ws(stack, a), await ws(stack, b)
    await ws_a.subscribe("p", "posts")
    await ws_b.subscribe("p", "posts")

    from_b = await rest_b.post("/api/collections/posts/records", json={"title": "from b"})
    assert from_b.status_code == 201, from_b.text
    [on_a] = await ws_a.changes(1)
    assert (on_a["action"], on_a["record"]) == ("create", from_b.json())
    from_a = await rest_a.patch(
        f"/api/collections/posts/records/{from_b.json()['id']}", json={"title": "from a"}
    )
    assert from_a.status_code == 200, from_a.text
    [on_b_create, on_b_update] = await ws_b.changes(2)
    assert on_b_create["change_id"] == on_a["change_id"]  # one log, one numbering
    assert (on_b_update["action"], on_b_update["record"]) == ("update", from_a.json())
    [on_a_update] = await ws_a.changes(1)
    assert on_a_update == on_b_update

    # many writes through both at once: each subscriber gets all of them, in one order
    async def write(client: httpx.AsyncClient, tag: str) -> None:
        for i in range(20):
            r = await client.post("/api/collections/posts/records", json={"title": f"{tag}{i}"})
            assert r.status_code == 201, r.text

    await asyncio.gather(write(rest_a, "a"), write(rest_b, "b"))
    got_a, got_b = await ws_a.changes(40), await ws_b.changes(40)
    assert [c["change_id"] for c in got_a] == [c["change_id"] for c in got_b]
    assert [c["record"]["title"] for c in got_a] == [c["record"]["title"] for c in got_b]
    ids = [c["change_id"] for c in got_a]
    assert ids == sorted(set(ids))
    titles = [c["record"]["title"] for c in got_a]
    for tag in "ab":  # each writer's records in the order it wrote them
        assert [t for t in titles if t.startswith(tag)] == [f"{tag}{i}" for i in range(20)]


async def test_a_write_from_outside_reaches_both_servers_within_the_poll_delay(
    database_url: str, tmp_path: Path, stack: AsyncExitStack
) -> None:
    poll_ms = 300
    env = {
        "BAAS_DATABASE_URL": database_url,
        "BAAS_PUBLIC_URL": PUBLIC_URL,
        "BAAS_REALTIME_POLL_MS": str(poll_ms),
    }
    with running(tmp_path, env, name="a") as a, running(tmp_path, env, name="b") as b:
        rest_a, rest_b = await rest(stack, a), await rest(stack, b)
        applied = await rest_a.post("/api/admin/schema/apply", json={"document": SCHEMA})
        assert applied.status_code == 200, applied.text
        await knows_posts(rest_b)
        ws_a, ws_b = await ws(stack, a), await ws(stack, b)
        await ws_a.subscribe("p", "posts")
        await ws_b.subscribe("p", "posts")
        conn = await asyncpg.connect(database_url)  # as psql would: neither server is told
        try:
            began = time.monotonic()
            await conn.execute("INSERT INTO posts (title) VALUES ('from psql')")
            [on_a], [on_b] = await asyncio.gather(ws_a.changes(1), ws_b.changes(1))
            took = time.monotonic() - began
        finally:
            await conn.close()
    assert on_a == on_b
    assert (on_a["action"], on_a["record"]["title"]) == ("create", "from psql")
    assert took < poll_ms / 1000 + 1.0, f"took {took:.2f}s with a {poll_ms} ms poll"


async def sign_up(client: httpx.AsyncClient, email: str) -> tuple[str, str]:
    r = await client.post("/api/auth/sign-up", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return r.json()["user"]["id"], r.json()["access_token"]


async def test_channel_members_meet_across_servers(
    pair: tuple[Server, Server], stack: AsyncExitStack
) -> None:
    a, b = pair
    rest_a, rest_b = await rest(stack, a), await rest(stack, b)
    settings = await rest_a.patch("/api/admin/settings", json={"auth.require_verification": False})
    assert settings.status_code == 200, settings.text
    assert (await rest_a.post("/api/admin/schema/apply", json={"document": SCHEMA})).is_success
    await knows_posts(rest_b)
    alice, alice_token = await sign_up(rest_a, "alice@example.com")
    bob, bob_token = await sign_up(rest_a, "bob@example.com")
    room = await rest_a.post("/api/collections/rooms/records", json={"members": [alice, bob]})
    assert room.status_code == 201, room.text
    channel = f"rooms/{room.json()['id']}"

    ws_a = await ws(stack, a, alice_token)
    ws_b = await ws(stack, b, bob_token)  # tokens of one install are good on every instance
    joined_a = await ws_a.request({"type": "join", "channel": channel}, "joined")
    joined_b = await ws_b.request(
        {"type": "join", "channel": channel, "presence": {"on": "b"}}, "joined"
    )
    assert joined_a["me"] in {m["member"] for m in joined_b["members"]}
    came = await ws_a.expect("presence", channel=channel)
    assert came["joined"] == [{"member": joined_b["me"], "user": bob, "presence": {"on": "b"}}]
    await ws_a.send({"type": "broadcast", "channel": channel, "event": "e", "payload": [1]})
    got = await ws_b.expect("broadcast", channel=channel, event="e", payload=[1])
    assert got["from"] == {"member": joined_a["me"], "user": alice}
    await ws_b.request({"type": "leave", "channel": channel}, "left")
    gone = await ws_a.expect("presence", channel=channel)
    assert [m["member"] for m in gone["left"]] == [joined_b["me"]]


async def test_baas_serve_closes_oversized_messages_with_1009(
    database_url: str, tmp_path: Path
) -> None:
    env = {"BAAS_DATABASE_URL": database_url, "BAAS_REALTIME_MAX_MESSAGE_BYTES": "1024"}
    with running(tmp_path, env) as server:
        async with AsyncExitStack() as s:
            client = await ws(s, server)
            await client.request({"type": "ping", "ref": "x" * 60}, "pong")
            # under the limit in characters, over it in bytes
            await client.send_raw(
                json.dumps({"type": "ping", "pad": "\u00e9" * 700}, ensure_ascii=False)
            )
            assert await client.closed() == 1009
