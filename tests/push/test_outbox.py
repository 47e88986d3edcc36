"""The development outbox: an app with "provider": "outbox" in push.apps keeps what APNs or FCM
would have received (the same request, byte for byte but the token), deliveries through it are
sent, admins read it back, and it is trimmed after its retention."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from baas.push import outbox
from tests.conftest import RunningApp, as_user
from tests.push.apns_server import FakeApns
from tests.push.conftest import (
    ADMIN,
    BUNDLE_ID,
    android_token,
    apps_setting,
    ios_token,
    new_user,
    send,
    set_apps,
    settled,
)
from tests.push.fcm_server import FakeFcm

DEV = {"dev": {"provider": "outbox"}}


async def register(
    api: httpx.AsyncClient, user: str, platform: str, token: str, **more: Any
) -> dict[str, Any]:
    body = {"platform": platform, "token": token, **more}
    response = await api.post("/api/push/devices", json=body, headers=as_user(user))
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


async def outbox_items(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/api/push/outbox", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_a_laptop_walk_through_register_send_and_read_the_outbox(
    bare: httpx.AsyncClient,
) -> None:
    """No credentials: the outbox app takes both platforms, devices register without app_id,
    and every send is `sent` with what it would have said in the outbox."""
    await set_apps(bare, DEV)
    ana, ben = new_user(), new_user()
    phone = await register(bare, ana, "ios", ios_token(), locale="fr")
    tablet = await register(bare, ben, "android", android_token())
    assert phone["app_id"] == tablet["app_id"] == "dev"  # the one app of each platform
    message = await send(
        bare,
        users=[ana, ben],
        title="Hello",
        body="You have mail",
        locales={"fr": {"title": "Bonjour"}},
        data={"chat": "c1"},
    )
    done = await settled(bare, message["id"])
    assert done["status"] == "sent" and done["counts"]["sent"] == 2 and done["failures"] == []
    items = await outbox_items(bare)
    assert {(i["platform"], i["user_id"], i["title"]) for i in items} == {
        ("ios", ana, "Bonjour"),
        ("android", ben, "Hello"),
    }
    ios = next(i for i in items if i["platform"] == "ios")
    assert ios["message_id"] == message["id"] and ios["device_id"] == phone["id"]
    assert ios["app"] == "dev" and ios["token_end"] == phone["token_end"]
    assert ios["payload"] == {
        "chat": "c1",
        "aps": {"alert": {"title": "Bonjour", "body": "You have mail"}},
    }
    page = await bare.get(f"/api/push/messages/{message['id']}/deliveries", headers=ADMIN)
    by_device = {d["device_id"]: d for d in page.json()["items"]}
    assert by_device[phone["id"]]["status"] == "sent"
    assert by_device[phone["id"]]["provider_id"] == ios["id"]  # the delivery names its entry
    one = await bare.get(f"/api/push/outbox/{ios['id']}", headers=ADMIN)
    assert one.status_code == 200 and one.json() == ios


async def test_the_outbox_keeps_exactly_what_apns_and_fcm_receive(
    api: httpx.AsyncClient,
    fake_apns: FakeApns,
    fake_fcm: FakeFcm,
    apns_key: tuple[str, bytes],
) -> None:
    """The same notification to a real-provider device and an outbox device of each platform:
    the outbox entry is the request the local APNs / FCM server got (token aside)."""
    apps = apps_setting(apns_key[0], fake_fcm)
    apps["dev"] = {"provider": "outbox", "bundle_id": "com.acme.dev", "packages": ["com.acme.dev"]}
    await set_apps(api, apps)
    user = new_user()
    real_ios, real_android = ios_token(), android_token()
    await register(api, user, "ios", real_ios, app_id=BUNDLE_ID)
    await register(api, user, "android", real_android, app_id="com.acme.chat")
    dev_ios = await register(api, user, "ios", ios_token(), app_id="com.acme.dev")
    dev_android = await register(api, user, "android", android_token(), app_id="com.acme.dev")
    cases: list[dict[str, Any]] = [
        {
            "title": "Hi",
            "body": "there",
            "data": {"n": 1, "s": "x"},
            "badge": 3,
            "sound": "ping.caf",
            "thread": "t1",
            "collapse_key": "c1",
            "ttl": 600,
            "image": "https://cdn.example.com/p.jpg",
            "priority": "normal",
        },
        {"data": {"sync": True}},  # silent: a background push, FCM's data-only message
    ]
    for number, case in enumerate(cases, 1):
        done = await settled(api, (await send(api, users=[user], **case))["id"])
        assert done["status"] == "sent" and done["total"] == 4
        kept = {i["device_id"]: i for i in await outbox_items(api, message_id=done["id"])}
        apple = fake_apns.received[-1]
        assert apple.token == real_ios and len(fake_apns.received) == number
        entry = kept[dev_ios["id"]]
        assert entry["payload"] == apple.payload
        headers = entry["headers"]
        assert (headers["apns-push-type"], headers["apns-priority"]) == (
            apple.push_type,
            apple.priority,
        )
        assert headers.get("apns-collapse-id") == apple.collapse_id
        assert ("apns-expiration" in headers) == (apple.expiration is not None)
        assert headers["apns-topic"] == "com.acme.dev"
        google = dict(fake_fcm.received[-1])
        assert google.pop("token") == real_android
        assert kept[dev_android["id"]]["payload"] == {"message": google}
        assert kept[dev_android["id"]]["headers"] == {}


async def test_the_outbox_api_filters_pages_and_is_for_admins(bare: httpx.AsyncClient) -> None:
    await set_apps(bare, DEV)
    ana, ben = new_user(), new_user()
    await register(bare, ana, "ios", ios_token())
    await register(bare, ben, "ios", ios_token())
    first = await settled(bare, (await send(bare, users=[ana, ben], title="one"))["id"])
    second = await settled(bare, (await send(bare, users=[ana], title="two"))["id"])
    everything = await outbox_items(bare)
    assert [i["title"] for i in everything] == ["two", "one", "one"]  # newest first
    assert [i["title"] for i in await outbox_items(bare, user_id=ben)] == ["one"]
    assert {i["user_id"] for i in await outbox_items(bare, message_id=first["id"])} == {ana, ben}
    assert len(await outbox_items(bare, message_id=second["id"])) == 1
    page = (await bare.get("/api/push/outbox", params={"limit": 2}, headers=ADMIN)).json()
    assert [i["id"] for i in page["items"]] == [i["id"] for i in everything[:2]]
    rest = await outbox_items(bare, before=page["next_before"])
    assert [i["id"] for i in rest] == [everything[2]["id"]]
    for params, name in (({"user_id": "nope"}, "user_id"), ({"before": "1"}, "before")):
        bad = await bare.get("/api/push/outbox", params=params, headers=ADMIN)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_parameter"
        assert bad.json()["error"]["parameter"] == name
    unknown = await bare.get("/api/push/outbox", params={"colour": "red"}, headers=ADMIN)
    assert unknown.status_code == 400
    missing = await bare.get(f"/api/push/outbox/{new_user()}", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "outbox_entry_not_found"
    assert (await bare.get("/api/push/outbox/x", headers=ADMIN)).status_code == 404
    anonymous = await bare.get("/api/push/outbox")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    refused = await bare.get("/api/push/outbox", headers=as_user(ana))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "push_not_allowed"


async def test_the_outbox_forgets_old_entries_and_keeps_at_most_its_limit(
    bare: httpx.AsyncClient, bare_app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    await set_apps(bare, DEV)
    user = new_user()
    await register(bare, user, "android", android_token())
    old = await settled(bare, (await send(bare, users=[user], title="old"))["id"])
    await bare_app.ctx.db.execute(
        "UPDATE baas.push_outbox SET created = now() - make_interval(secs => $1)",
        float(outbox.KEEP_S + 60),
    )
    monkeypatch.setattr(outbox, "MAX_ENTRIES", 3)
    for n in range(4):
        await settled(bare, (await send(bare, users=[user], title=f"new {n}"))["id"])
    titles = [i["title"] for i in await outbox_items(bare)]
    assert titles == ["new 3", "new 2", "new 1"]
    assert await outbox_items(bare, message_id=old["id"]) == []
