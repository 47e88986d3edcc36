"""Push end to end: devices, topics, sending through the job queue to local APNs and FCM servers
(real aioapns and pyfcm clients), delivery tracking, dead tokens, retries, outages, schedules."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from baas.net import AddressPolicy, OutboundClient
from baas.push.apps import parse_apps
from baas.push.fcm import FcmProvider
from baas.push.notification import Notification
from baas.push.provider import Device
from tests.conftest import LOCAL_NETWORKS, as_user
from tests.push.apns_server import FakeApns
from tests.push.conftest import (
    ADMIN,
    BUNDLE_ID,
    android_token,
    ios_token,
    new_user,
    register,
    send,
    settled,
)
from tests.push.fcm_server import FakeFcm


async def test_a_device_registers_updates_moves_and_unregisters(api: httpx.AsyncClient) -> None:
    alice, bob = new_user(), new_user()
    token = ios_token()
    first = await register(api, alice, "ios", token, locale="en_GB", name="Alice's phone")
    again = await register(api, alice, "ios", token, locale="fr")
    assert again["id"] == first["id"] and again["locale"] == "fr"
    assert again["name"] == "Alice's phone" and again["token_end"] == token[-8:]
    assert "token" not in again
    mine = (await api.get("/api/push/devices", headers=as_user(alice))).json()["items"]
    assert [d["id"] for d in mine] == [first["id"]]
    # The phone changes hands: the token now belongs to bob.
    moved = await register(api, bob, "ios", token)
    assert moved["id"] == first["id"] and moved["user_id"] == bob
    assert (await api.get("/api/push/devices", headers=as_user(alice))).json()["items"] == []
    refused = await api.delete(f"/api/push/devices/{first['id']}", headers=as_user(alice))
    assert refused.status_code == 404
    gone = await api.delete(f"/api/push/devices/{first['id']}", headers=as_user(bob))
    assert gone.status_code == 204
    assert (await api.get("/api/push/devices", headers=as_user(bob))).json()["items"] == []


async def test_anonymous_installs_manage_their_devices_with_their_install_id(
    api: httpx.AsyncClient,
) -> None:
    install = "install-" + "a" * 20
    device = await register(api, None, "android", android_token(), install_id=install)
    assert device["user_id"] is None and device["install_id"] == install
    listed = await api.get("/api/push/devices", params={"install_id": install})
    assert [d["id"] for d in listed.json()["items"]] == [device["id"]]
    other = await api.delete(f"/api/push/devices/{device['id']}", params={"install_id": "x" * 20})
    assert other.status_code == 404
    mine = await api.delete(f"/api/push/devices/{device['id']}", params={"install_id": install})
    assert mine.status_code == 204
    nobody = await api.post(
        "/api/push/devices", json={"platform": "ios", "token": ios_token(), "app_id": BUNDLE_ID}
    )
    assert nobody.status_code == 400 and "install_id" in nobody.json()["error"]["fields"]
    # A user_id that is not an id is refused whoever sends it, never silently ignored.
    for headers in ({}, as_user(new_user())):
        malformed = await api.get(
            "/api/push/devices", params={"install_id": install, "user_id": "â"}, headers=headers
        )
        assert malformed.status_code == 400, malformed.text
        assert set(malformed.json()["error"]["fields"]) == {"user_id"}
    # So is a malformed install_id, even from a signed-in user (whose devices need none).
    signed_in = await api.get(
        "/api/push/devices", params={"install_id": ""}, headers=as_user(new_user())
    )
    assert signed_in.status_code == 400, signed_in.text
    assert set(signed_in.json()["error"]["fields"]) == {"install_id"}
    # A subscription's body, when there is one, is an object.
    listed_body = await api.request(
        "DELETE", "/api/push/topics/news/subscribe", json=[None], headers=as_user(new_user())
    )
    assert listed_body.status_code == 400, listed_body.text
    assert listed_body.json()["error"]["fields"]["body"]["code"] == "invalid_body"


async def test_bad_registrations_say_what_is_wrong_with_each_value(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/push/devices",
        json={"platform": "ios", "token": "not-hex", "app_id": "", "locale": "?", "color": 1},
        headers=as_user(new_user()),
    )
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields == {
        "token": {
            "code": "invalid_value",
            "message": "not an APNs device token (7 characters): expected 64 or more hex digits",
        },
        "app_id": {
            "code": "invalid_value",
            "message": "'' is not an app id: send the bundle id (iOS) or package name (Android)",
        },
        "locale": {
            "code": "invalid_value",
            "message": "'?' is not a locale: send a language (fr) or language and region (pt_BR)",
        },
        "color": {
            "code": "unknown_field",
            "message": "a device has no 'color': send platform, token, app_id, locale, name,"
            " install_id, user_id",
        },
    }
    wrong = await api.post(
        "/api/push/devices",
        json={"platform": "windows", "token": "x", "app_id": "a"},
        headers=as_user(new_user()),
    )
    assert wrong.json()["error"]["fields"] == {  # the token can't be judged without a platform
        "platform": {
            "code": "invalid_choice",
            "message": "'windows' is not a platform: send ios or android",
        }
    }
    bare = await api.post("/api/push/devices", json={}, headers=as_user(new_user()))
    assert bare.json()["error"]["fields"]["platform"]["code"] == "required"
    no_token = await api.post(
        "/api/push/devices", json={"platform": "android"}, headers=as_user(new_user())
    )
    assert no_token.json()["error"]["fields"] == {
        "token": {
            "code": "required",
            "message": "the FCM registration token is missing: send the one FCM gave the app",
        }
    }


async def test_fan_out_reaches_every_device_of_several_users_on_both_platforms(
    api: httpx.AsyncClient, fake_apns: FakeApns, fake_fcm: FakeFcm
) -> None:
    users = [new_user() for _ in range(4)]
    tokens: dict[str, str] = {}
    for i, user in enumerate(users):
        for _ in range(3):
            ios, android = ios_token(), android_token()
            locale = "fr_CA" if i == 0 else "en"
            await register(api, user, "ios", ios, locale=locale)
            await register(api, user, "android", android, locale=locale)
            tokens[ios] = tokens[android] = user
    outsider = ios_token()
    await register(api, new_user(), "ios", outsider)
    message = await send(
        api,
        users=users,
        title="Hello",
        body="You have mail",
        data={"chat": "c1", "count": 3},
        badge=2,
        sound="ping.caf",
        thread="chat-c1",
        collapse_key="chat-c1",
        ttl=600,
        locales={"fr": {"title": "Bonjour", "body": "Vous avez du courrier"}},
    )
    assert message["status"] in ("scheduled", "sending")
    done = await settled(api, message["id"])
    assert done["status"] == "sent" and done["total"] == 24
    assert done["counts"] == {"queued": 0, "sending": 0, "retrying": 0, "sent": 24, "failed": 0}
    for token in tokens:
        assert (fake_apns.count(token) or fake_fcm.count(token)) == 1, token
    assert fake_apns.count(outsider) == 0
    apple = {r.token: r for r in fake_apns.received}
    french = next(r for t, r in apple.items() if tokens[t] == users[0])
    english = next(r for t, r in apple.items() if tokens[t] == users[1])
    assert french.payload["aps"]["alert"] == {"title": "Bonjour", "body": "Vous avez du courrier"}
    assert english.payload == {
        "chat": "c1",
        "count": 3,
        "aps": {
            "alert": {"title": "Hello", "body": "You have mail"},
            "badge": 2,
            "sound": "ping.caf",
            "thread-id": "chat-c1",
        },
    }
    assert (english.topic, english.push_type, english.priority) == (BUNDLE_ID, "alert", "10")
    assert english.collapse_id == "chat-c1" and english.expiration is not None
    google = next(m for m in fake_fcm.received if tokens[m["token"]] == users[1])
    assert google["notification"] == {"title": "Hello", "body": "You have mail"}
    assert google["data"] == {"chat": "c1", "count": "3"}
    assert google["android"]["priority"] == "HIGH" and google["android"]["ttl"] == "600s"
    assert google["android"]["collapse_key"] == "chat-c1"
    page = await api.get(f"/api/push/messages/{message['id']}/deliveries", headers=ADMIN)
    assert {d["status"] for d in page.json()["items"]} == {"sent"}
    assert fake_fcm.tokens_issued == 1  # one OAuth token for every sending thread


async def test_an_access_token_google_expired_early_is_replaced(
    api: httpx.AsyncClient, fake_fcm: FakeFcm
) -> None:
    user = new_user()
    await register(api, user, "android", android_token())
    assert (await settled(api, (await send(api, users=[user], title="1"))["id"]))[
        "status"
    ] == "sent"
    fake_fcm.expire_tokens()
    assert (await settled(api, (await send(api, users=[user], title="2"))["id"]))[
        "status"
    ] == "sent"
    assert fake_fcm.tokens_issued == 2 and len(fake_fcm.received) == 2


async def test_dead_tokens_fail_alone_and_their_devices_are_disabled(
    api: httpx.AsyncClient, fake_apns: FakeApns, fake_fcm: FakeFcm
) -> None:
    user = new_user()
    good = [ios_token(), android_token()]
    dead_ios, dead_android = ios_token(), android_token()
    for token in [*good, dead_ios]:
        await register(api, user, "ios" if token in (good[0], dead_ios) else "android", token)
    await register(api, user, "android", dead_android)
    fake_apns.dead_tokens.add(dead_ios)
    fake_fcm.dead_tokens.add(dead_android)
    first = await settled(api, (await send(api, users=[user], title="t"))["id"])
    assert first["status"] == "partially_sent"
    assert first["counts"]["sent"] == 2 and first["counts"]["failed"] == 2
    failed = await api.get(
        f"/api/push/messages/{first['id']}/deliveries", params={"status": "failed"}, headers=ADMIN
    )
    assert sorted(d["reason"] for d in failed.json()["items"]) == ["UNREGISTERED", "Unregistered"]
    devices = (await api.get("/api/push/devices", headers=as_user(user))).json()["items"]
    disabled = {d["token_end"]: d["disabled_reason"] for d in devices if not d["enabled"]}
    assert disabled == {dead_ios[-8:]: "Unregistered", dead_android[-8:]: "UNREGISTERED"}
    second = await settled(api, (await send(api, users=[user], title="again"))["id"])
    assert second["status"] == "sent" and second["total"] == 2
    assert fake_apns.count(dead_ios) == 0 and fake_fcm.count(dead_android) == 0
    # Registering the token again (the app was reinstalled) enables it.
    back = await register(api, user, "ios", dead_ios)
    assert back["enabled"] is True and back["disabled_reason"] is None


async def test_transient_errors_are_retried_honouring_retry_after(
    api: httpx.AsyncClient, fake_apns: FakeApns, fake_fcm: FakeFcm
) -> None:
    user = new_user()
    ios, android = ios_token(), android_token()
    await register(api, user, "ios", ios)
    await register(api, user, "android", android)
    fake_apns.fail_next(2, 503)
    fake_fcm.fail_next(1, 429, retry_after=1)
    started = time.monotonic()
    done = await settled(api, (await send(api, users=[user], title="t"))["id"])
    assert done["status"] == "sent"
    assert time.monotonic() - started >= 1.0  # FCM asked for a second
    assert fake_apns.count(ios) == 1 and fake_fcm.count(android) == 1
    page = await api.get(f"/api/push/messages/{done['id']}/deliveries", headers=ADMIN)
    attempts = {d["platform"]: d["attempts"] for d in page.json()["items"]}
    assert attempts == {"ios": 3, "android": 2}


async def test_a_provider_outage_delays_delivery_and_loses_nothing(
    api: httpx.AsyncClient, fake_apns: FakeApns, fake_fcm: FakeFcm
) -> None:
    users, tokens = [], []
    for _ in range(5):
        user = new_user()
        ios, android = ios_token(), android_token()
        await register(api, user, "ios", ios)
        await register(api, user, "android", android)
        users.append(user)
        tokens += [ios, android]
    fake_apns.set_down(True)
    fake_fcm.set_down(True)
    message = await send(api, users=users, title="outage")
    deliveries = f"/api/push/messages/{message['id']}/deliveries"
    async with asyncio.timeout(10):
        while True:  # every device has been tried twice and is waiting for another retry
            page = (await api.get(deliveries, headers=ADMIN)).json()["items"]
            if len(page) == 10 and all(d["attempts"] >= 2 for d in page):
                break
            await asyncio.sleep(0.05)
    during = (await api.get(f"/api/push/messages/{message['id']}", headers=ADMIN)).json()
    assert during["status"] == "sending" and during["counts"]["sent"] == 0
    assert all(d["status"] in ("sending", "retrying") for d in page)
    assert not fake_apns.received and not fake_fcm.received
    fake_apns.set_down(False)
    fake_fcm.set_down(False)
    done = await settled(api, message["id"])
    assert done["status"] == "sent" and done["counts"]["sent"] == 10
    assert all((fake_apns.count(t) or fake_fcm.count(t)) == 1 for t in tokens)


async def test_a_scheduled_message_is_sent_at_its_time(
    api: httpx.AsyncClient, fake_apns: FakeApns
) -> None:
    user = new_user()
    token = ios_token()
    await register(api, user, "ios", token)
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    message = await send(api, users=[user], title="later", send_at=at.isoformat())
    assert message["status"] == "scheduled"
    done = await settled(api, message["id"])
    assert done["status"] == "sent" and fake_apns.count(token) == 1
    assert datetime.fromisoformat(done["fanned_out"]) >= at
    [note] = fake_apns.received
    assert note.at >= at  # the provider heard of it no earlier than asked


async def test_a_scheduled_message_can_be_cancelled(api: httpx.AsyncClient) -> None:
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    message = await send(api, users=[new_user()], title="never", send_at=at)
    cancelled = await api.post(f"/api/push/messages/{message['id']}/cancel", headers=ADMIN)
    assert cancelled.json()["status"] == "cancelled"
    again = await api.post(f"/api/push/messages/{message['id']}/cancel", headers=ADMIN)
    assert again.status_code == 409 and again.json()["error"]["code"] == "message_state"


async def test_many_dead_tokens_on_one_connection_do_not_stall_delivery(
    api: httpx.AsyncClient, push_app: Any, fake_apns: FakeApns
) -> None:
    """Apple's error bodies count against HTTP/2 flow control: unless the client returns the
    credit, ~1,000 refusals fill the window and sends stall (aioapns PR #75)."""
    user = new_user()
    tokens = [ios_token() for _ in range(1500)]
    fake_apns.dead_tokens.update(tokens)
    await push_app.ctx.db.execute(
        "INSERT INTO baas.push_devices (id, user_id, platform, token, app_id)"
        " SELECT gen_random_uuid(), $1, 'ios', t, $3 FROM unnest($2::text[]) AS t",
        user,
        tokens,
        BUNDLE_ID,
    )
    started = time.monotonic()
    done = await settled(api, (await send(api, users=[user], title="t"))["id"], timeout_s=30)
    assert done["status"] == "failed" and done["counts"]["failed"] == 1500
    assert time.monotonic() - started < 8  # a stalled connection waits 10 s per round
    disabled = await push_app.ctx.db.fetchval(
        "SELECT count(*) FROM baas.push_devices WHERE NOT enabled AND disabled_reason = 'Unregistered'"
    )
    assert disabled == 1500


async def test_credentials_are_sealed_and_an_invalid_fcm_token_is_dead(
    api: httpx.AsyncClient, push_app: Any, fake_fcm: FakeFcm
) -> None:
    row = await push_app.ctx.db.fetchrow(
        "SELECT value, sealed FROM baas.settings WHERE name = 'push.apps'"
    )
    assert row["value"] is None and b"PRIVATE KEY" not in bytes(row["sealed"])
    shown = await api.get("/api/admin/settings", headers=ADMIN)
    [apps] = [s for s in shown.json()["items"] if s["name"] == "push.apps"]
    assert apps["value"] is True and apps["secret"] is True  # set, never shown
    user = new_user()
    await push_app.ctx.db.execute(  # a token FCM calls malformed (the API would refuse it)
        "INSERT INTO baas.push_devices (id, user_id, platform, token, app_id)"
        " VALUES (gen_random_uuid(), $1, 'android', 'not a token', 'com.acme.chat')",
        user,
    )
    done = await settled(api, (await send(api, users=[user], title="t"))["id"])
    assert done["status"] == "failed"
    devices = (await api.get("/api/push/devices", headers=as_user(user))).json()["items"]
    assert devices[0]["enabled"] is False
    assert devices[0]["disabled_reason"].startswith("INVALID_ARGUMENT")


async def test_changing_another_setting_keeps_the_provider_clients(
    api: httpx.AsyncClient, push_app: Any
) -> None:
    """Every settings reload parses `push.apps` again: an equal value must not retire (and
    leak) the open APNs connections and FCM threads."""
    user = new_user()
    await register(api, user, "ios", ios_token())
    await register(api, user, "android", android_token())
    assert (await settled(api, (await send(api, users=[user], title="1"))["id"]))[
        "status"
    ] == "sent"
    senders = push_app.ctx.background.senders
    before = dict(senders._providers)
    for topics in ({"news": ""}, {"sport": ""}):
        changed = await api.patch(
            "/api/admin/settings", json={"push.topics": topics}, headers=ADMIN
        )
        assert changed.status_code == 200
        async with asyncio.timeout(5):
            while push_app.ctx.runtime["push.topics"] != topics:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert (await settled(api, (await send(api, users=[user], title="2"))["id"]))[
            "status"
        ] == "sent"
    assert senders._providers == before and senders._retired == []


async def test_a_token_endpoint_that_never_answers_costs_one_send_timeout(
    fake_fcm: FakeFcm,
) -> None:
    """A send waiting for the OAuth token gives up within BAAS_PUSH_TIMEOUT_S like any other
    (the queue retries it), and the sends queued behind it fail at once, not in turn."""
    silent = socket.create_server(("127.0.0.1", 0))  # connects, never answers
    account = {
        **fake_fcm.service_account_info(),
        "token_uri": f"http://127.0.0.1:{silent.getsockname()[1]}/token",
    }
    app = parse_apps({"a": {"platform": "android", "service_account": account}})["a"]
    outbound = OutboundClient(AddressPolicy.allowing(*LOCAL_NETWORKS))
    provider = FcmProvider(
        app, url=fake_fcm.endpoint_base, outbound=outbound, timeout_s=0.5, threads=4
    )
    device = Device("d", "android", android_token(), "a", None)
    try:
        started = time.monotonic()
        async with asyncio.timeout(10):
            outcomes = await asyncio.gather(
                *(provider.send(device, Notification(title="t")) for _ in range(8))
            )
        assert {o.verdict for o in outcomes} == {"retry"}
        assert time.monotonic() - started < 3
    finally:
        silent.close()  # resets the connections still waiting
        await provider.close()
        outbound.close()
    assert not fake_fcm.received


async def test_any_5xx_from_apns_is_transient(api: httpx.AsyncClient, fake_apns: FakeApns) -> None:
    """Apple answers 500 and 503, but a proxy in front of it (BAAS_APNS_HOST) may answer 502
    or 504: a server error all the same, retried, never a failed delivery."""
    user = new_user()
    token = ios_token()
    await register(api, user, "ios", token)
    fake_apns.fail_next(1, 502, "BadGateway")
    fake_apns.fail_next(1, 504, "GatewayTimeout")
    done = await settled(api, (await send(api, users=[user], title="t"))["id"])
    assert done["status"] == "sent" and fake_apns.count(token) == 1
