"""Who may push and subscribe (rules over users), sends to topics and filters, and push triggers
declared in the schema file: a record insert or update sends a templated notification."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from baas.push import triggers
from baas.push.notification import MAX_TEXT
from baas.schema.models import PushTrigger
from tests.conftest import RunningApp, apply_schema, as_user
from tests.push.apns_server import FakeApns
from tests.push.conftest import (
    ADMIN,
    idle,
    ios_token,
    new_user,
    register,
    send,
    settled,
)
from tests.push.fcm_server import FakeFcm

SCHEMA: dict[str, Any] = {
    "collections": {
        "users": {  # others' accounts are viewable: messages name their recipient
            "fields": {"team": "text"},
            "rules": {"list": "id = auth.id", "view": "", "create": "", "update": "id = auth.id"},
        },
        "messages": {
            "fields": {
                "text": "text",
                "urgent": "bool",
                "chat": "text",
                "recipient": {"type": "relation", "collection": "users"},
                "watchers": {"type": "relation", "collection": "users", "multiple": True},
            },
            "rules": {"list": "", "view": "", "create": "", "update": ""},
            "push": [
                {
                    "on": "create",
                    "to": "recipient",
                    "filter": "text != ''",
                    "title": "New message",
                    "body": "{{ record.text | truncate(20) }}",
                    "data": {"chat": "{{ record.chat }}"},
                    "thread": "chat-{{ record.chat }}",
                },
                {
                    "on": "update",
                    "to": "watchers",
                    "filter": "urgent = true",
                    "title": "Now urgent: {{ record.text }}",
                },
            ],
        },
    }
}


async def create_user(api: httpx.AsyncClient, **fields: Any) -> str:
    response = await api.post("/api/collections/users/records", json=fields, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


async def set_runtime(api: httpx.AsyncClient, app: Any, **values: Any) -> None:
    response = await api.patch("/api/admin/settings", json=values, headers=ADMIN)
    assert response.status_code == 200, response.text
    async with asyncio.timeout(5):
        while any(app.ctx.runtime[k] != v for k, v in values.items()):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def wait_received(fake: FakeApns, n: int) -> None:
    async with asyncio.timeout(10):
        while len(fake.received) < n:  # noqa: ASYNC110 - the fake records in its own thread
            await asyncio.sleep(0.02)


async def test_a_record_insert_pushes_to_the_recipient_as_the_schema_says(
    api: httpx.AsyncClient, push_app: RunningApp, fake_apns: FakeApns
) -> None:
    await apply_schema(api, SCHEMA)
    bob = await create_user(api)
    phone = ios_token()
    await register(api, bob, "ios", phone)
    text = "Lunch at noon? The usual place, bring the plans"
    created = await api.post(
        "/api/collections/messages/records",
        json={"text": text, "chat": "c7", "recipient": bob},
        headers=as_user(new_user()),
    )
    assert created.status_code == 201, created.text
    await wait_received(fake_apns, 1)
    [note] = fake_apns.received
    assert note.token == phone
    assert note.payload["aps"]["alert"] == {"title": "New message", "body": "Lunch at noon?..."}
    assert note.payload["aps"]["thread-id"] == "chat-c7" and note.payload["chat"] == "c7"
    # No text: the filter says no notification.
    await api.post(
        "/api/collections/messages/records",
        json={"text": "", "recipient": bob},
        headers=as_user(new_user()),
    )
    await idle(push_app)  # its trigger job has run
    assert len(fake_apns.received) == 1


async def test_an_update_pushes_once_when_the_record_comes_to_match(
    api: httpx.AsyncClient, push_app: RunningApp, fake_apns: FakeApns
) -> None:
    await apply_schema(api, SCHEMA)
    watchers = [await create_user(api) for i in range(2)]
    for w in watchers:
        await register(api, w, "ios", ios_token())
    record = (
        await api.post(
            "/api/collections/messages/records",
            json={"text": "server down", "watchers": watchers},
            headers=ADMIN,
        )
    ).json()
    url = f"/api/collections/messages/records/{record['id']}"
    await api.patch(url, json={"text": "server down again"}, headers=ADMIN)
    await idle(push_app)
    assert fake_apns.received == []  # not urgent: no push
    await api.patch(url, json={"urgent": True}, headers=ADMIN)
    await wait_received(fake_apns, 2)
    await api.patch(url, json={"text": "still down"}, headers=ADMIN)  # was urgent already
    await idle(push_app)
    assert len(fake_apns.received) == 2
    assert {n.payload["aps"]["alert"]["title"] for n in fake_apns.received} == {
        "Now urgent: server down again"
    }


async def test_bad_push_triggers_are_refused_with_their_paths(api: httpx.AsyncClient) -> None:
    bad = {
        "collections": {
            "notes": {
                "fields": {"owner": {"type": "relation", "collection": "users"}, "n": "integer"},
                "push": [
                    {"on": "delete", "to": "n", "title": "{{ oops"},
                    {"on": "create", "to": "owner", "filter": "nope > 1", "body": "x"},
                ],
            }
        }
    }
    response = await api.post("/api/admin/schema/diff", json={"document": bad}, headers=ADMIN)
    assert response.status_code == 400
    problems = "\n".join(response.json()["error"]["problems"])
    for path in ("push[0].on", "push[0].to", "push[0].title"):
        assert f"collections.notes.{path}" in problems, problems
    del bad["collections"]["notes"]["push"][0]  # the document parses: the filter is compiled
    response = await api.post("/api/admin/schema/diff", json={"document": bad}, headers=ADMIN)
    assert response.status_code == 400
    assert "collections.notes.push[0].filter" in response.json()["error"]["problems"][0]


async def test_topics_are_closed_unless_a_rule_opens_them(
    api: httpx.AsyncClient, push_app: Any, fake_apns: FakeApns
) -> None:
    await apply_schema(api, SCHEMA)
    red = await create_user(api, team="red")
    blue = await create_user(api, team="blue")
    red_phone, blue_phone = ios_token(), ios_token()
    await register(api, red, "ios", red_phone)
    blue_device = await register(api, blue, "ios", blue_phone)
    closed = await api.post("/api/push/topics/news/subscribe", headers=as_user(red))
    assert closed.status_code == 403 and closed.json()["error"]["code"] == "topic_not_allowed"
    await set_runtime(api, push_app, **{"push.topics": {"news": "", "team-*": "team = 'red'"}})
    assert (
        await api.post("/api/push/topics/news/subscribe", headers=as_user(red))
    ).status_code == 200
    by_device = await api.post(
        "/api/push/topics/news/subscribe",
        json={"device_id": blue_device["id"]},
        headers=as_user(blue),
    )
    assert by_device.status_code == 200
    assert (
        await api.post("/api/push/topics/team-x/subscribe", headers=as_user(red))
    ).status_code == 200
    refused = await api.post("/api/push/topics/team-x/subscribe", headers=as_user(blue))
    assert refused.status_code == 403
    mine = (await api.get("/api/push/topics", headers=as_user(red))).json()
    assert mine["user"] == ["news", "team-x"]
    done = await settled(api, (await send(api, topics=["news"], title="Extra!"))["id"])
    assert (
        done["total"] == 2 and fake_apns.count(red_phone) == 1 and fake_apns.count(blue_phone) == 1
    )
    left = await api.delete("/api/push/topics/news/subscribe", headers=as_user(red))
    assert left.json()["subscribed"] is False
    done = await settled(api, (await send(api, topics=["news"], title="Again"))["id"])
    assert done["total"] == 1


async def test_a_filter_over_users_chooses_the_recipients(
    api: httpx.AsyncClient, fake_apns: FakeApns, fake_fcm: FakeFcm
) -> None:
    await apply_schema(api, SCHEMA)
    phones = {}
    for team in ["red", "red", "blue"]:
        user = await create_user(api, team=team)
        phones[user] = ios_token()
        await register(api, user, "ios", phones[user])
    done = await settled(api, (await send(api, filter="team = 'red'", title="Reds"))["id"])
    assert done["total"] == 2
    assert sorted(fake_apns.count(t) for t in phones.values()) == [0, 1, 1]
    bad = await api.post(
        "/api/push/send", json={"filter": "colour = 1", "title": "x"}, headers=ADMIN
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_filter"


async def test_users_push_only_where_the_send_rule_lets_them(
    api: httpx.AsyncClient, push_app: Any, fake_apns: FakeApns
) -> None:
    await apply_schema(api, SCHEMA)
    alice = await create_user(api, team="red")
    teammate = await create_user(api, team="red")
    stranger = await create_user(api, team="blue")
    await register(api, teammate, "ios", ios_token())
    body = {"users": [teammate], "title": "ping"}
    locked = await api.post("/api/push/send", json=body, headers=as_user(alice))
    assert locked.status_code == 403 and locked.json()["error"]["code"] == "push_not_allowed"
    await set_runtime(api, push_app, **{"push.user_send_rule": "team = auth.team"})
    await api.patch(  # auth.team is read from the caller's own user record
        f"/api/collections/users/records/{alice}", json={"team": "red"}, headers=ADMIN
    )
    allowed = await api.post("/api/push/send", json=body, headers=as_user(alice))
    assert allowed.status_code == 202, allowed.text
    mine = await api.get(f"/api/push/messages/{allowed.json()['id']}", headers=as_user(alice))
    assert mine.status_code == 200
    theirs = await api.get(f"/api/push/messages/{allowed.json()['id']}", headers=as_user(stranger))
    assert theirs.status_code == 404
    refused = await api.post(
        "/api/push/send", json={"users": [teammate, stranger], "title": "x"}, headers=as_user(alice)
    )
    assert refused.status_code == 403
    topics = await api.post(
        "/api/push/send", json={"topics": ["news"], "title": "x"}, headers=as_user(alice)
    )
    assert topics.status_code == 403


async def test_bad_sends_name_every_problem(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/push/send",
        json={
            "users": ["not-an-id"],
            "badge": -1,
            "priority": "urgent",
            "image": "http://x",
            "send_at": "tomorrow",
            "data": {"aps": 1},
            "ttl": 10**9,
            "shout": True,
        },
        headers=ADMIN,
    )
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {
        "users",
        "badge",
        "priority",
        "image",
        "send_at",
        "data",
        "ttl",
        "shout",
        "title",
    }
    nobody = await api.post("/api/push/send", json={"title": "hi"}, headers=ADMIN)
    assert nobody.status_code == 400 and "users" in nobody.json()["error"]["fields"]
    anonymous = await api.post("/api/push/send", json={"title": "hi", "users": [new_user()]})
    assert anonymous.status_code == 401  # credentials would help: not a 403
    assert anonymous.json()["error"]["code"] == "unauthorized"


def test_rendered_trigger_texts_keep_the_limits_of_a_send() -> None:
    """A record's text is the client's: rendered into a trigger it must not make a title APNs
    and FCM refuse for size, nor a collapse id over APNs' 64 bytes."""
    trigger = PushTrigger(
        on="create",
        to="recipient",
        title="{{ record.text }}",
        body="{{ record.text }}",
        data=(("text", "{{ record.text }}"),),
        thread="{{ record.text }}",
        collapse_key="chat-{{ record.chat }}",
    )
    note = triggers._render(trigger, {"text": "x" * 50_000, "chat": "é" * 60}, None)
    assert len(note.title) == len(note.body) == len(note.data["text"]) == MAX_TEXT
    assert note.thread is not None and len(note.thread) == MAX_TEXT
    assert note.collapse_key is not None and len(note.collapse_key.encode()) <= 64
    assert note.collapse_key == "chat-" + "é" * 29
