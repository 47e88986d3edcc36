"""Push with apps missing: registrations and sends that could not be delivered are refused at
once (409 push_not_configured) saying what is missing, `app_id` is optional when one app serves
a platform, and every code the push API answers is in the README's list."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from baas.push.apps import find_app, parse_apps
from tests.conftest import RunningApp, as_user
from tests.push.conftest import ADMIN, android_token, ios_token, new_user, set_apps, settled

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
TWO_IOS = {
    "chat": {"provider": "outbox", "platform": "ios", "bundle_id": "com.acme.chat"},
    "beta": {"provider": "outbox", "platform": "ios", "bundle_id": "com.acme.beta"},
}


async def post_device(api: httpx.AsyncClient, user: str, **body: Any) -> httpx.Response:
    return await api.post("/api/push/devices", json=body, headers=as_user(user))


async def insert_device(app: RunningApp, user: str, platform: str, app_id: str) -> str:
    """A device registered when other apps were configured (the API refuses it now)."""
    token = ios_token() if platform == "ios" else android_token()
    device_id: str = await app.ctx.db.fetchval(
        "INSERT INTO baas.push_devices (id, user_id, platform, token, app_id)"
        " VALUES (gen_random_uuid(), $1, $2, $3, $4) RETURNING id",
        user,
        platform,
        token,
        app_id,
    )
    return device_id


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == code, body
    return body


async def test_without_any_app_registering_and_sending_are_refused_saying_so(
    bare: httpx.AsyncClient,
) -> None:
    user = new_user()
    ios = await post_device(bare, user, platform="ios", token=ios_token())
    assert error(ios, 409, "push_not_configured")["message"] == (
        "no APNs app is configured for iOS devices: an admin adds it to the runtime setting"
        " push.apps (see the README's Push section)"
    )
    android = await post_device(bare, user, platform="android", token=android_token())
    assert error(android, 409, "push_not_configured")["message"].startswith(
        "no FCM app is configured for Android devices"
    )
    sent = await bare.post("/api/push/send", json={"users": [user], "title": "t"}, headers=ADMIN)
    message = error(sent, 409, "push_not_configured")["message"]
    assert message.startswith("no push app is configured (the runtime setting push.apps is empty)")
    assert """baas settings set push.apps '{"dev":{"provider":"outbox"}}'""" in message
    scheduled = await bare.post(
        "/api/push/send",
        json={"topics": ["news"], "title": "t", "send_at": _tomorrow()},
        headers=ADMIN,
    )
    error(scheduled, 409, "push_not_configured")
    queued = await bare.get("/api/admin/jobs", headers=ADMIN)
    assert queued.json()["items"] == []  # nothing was queued


async def test_a_device_names_its_app_only_when_several_serve_its_platform(
    bare: httpx.AsyncClient,
) -> None:
    await set_apps(bare, {**TWO_IOS, "droid": {"provider": "outbox", "platform": "android"}})
    user = new_user()
    android = await post_device(bare, user, platform="android", token=android_token())
    assert android.status_code == 201 and android.json()["app_id"] == "droid"
    unnamed = await post_device(bare, user, platform="ios", token=ios_token())
    assert error(unnamed, 400, "validation_failed")["fields"] == {
        "app_id": {
            "code": "required",
            "message": "2 iOS apps are configured, so the device must say which it belongs to:"
            " send app_id, the bundle id your app was built with",
        }
    }
    other = await post_device(bare, user, platform="ios", token=ios_token(), app_id="com.other")
    assert error(other, 409, "push_not_configured")["message"].startswith(
        "no APNs app is configured for bundle id com.other:"
    )
    named = await post_device(bare, user, platform="ios", token=ios_token(), app_id="com.acme.beta")
    assert named.status_code == 201 and named.json()["app_id"] == "com.acme.beta"
    await set_apps(bare, {"chat": TWO_IOS["chat"]})  # one iOS app: it takes any app id
    anything = await post_device(bare, user, platform="ios", token=ios_token(), app_id="x.y")
    assert anything.status_code == 201
    bundle = await post_device(bare, user, platform="ios", token=ios_token())
    assert bundle.json()["app_id"] == "com.acme.chat"  # kept with the app's bundle id
    no_android = await post_device(bare, user, platform="android", token=android_token())
    assert error(no_android, 409, "push_not_configured")["message"].startswith(
        "no FCM app is configured for Android devices"
    )


async def test_a_send_none_of_whose_devices_has_an_app_is_refused_naming_them(
    bare: httpx.AsyncClient, bare_app: RunningApp
) -> None:
    await set_apps(bare, TWO_IOS)
    stranded, mixed, nobody = new_user(), new_user(), new_user()
    await insert_device(bare_app, stranded, "ios", "com.gone")
    await insert_device(bare_app, stranded, "android", "com.acme.chat")
    refused = await bare.post(
        "/api/push/send", json={"users": [stranded], "title": "t"}, headers=ADMIN
    )
    body = error(refused, 409, "push_not_configured")
    assert body["message"] == (
        "nothing could be delivered: no FCM app is configured for Android devices; no APNs app"
        " is configured for bundle id com.gone. Register the devices for a configured app, or"
        " an admin adds theirs to the runtime setting push.apps"
    )
    assert body["unreachable"] == [
        {"platform": "android", "app_id": "com.acme.chat"},
        {"platform": "ios", "app_id": "com.gone"},
    ]
    # Some devices reachable: the send goes ahead; the others fail with the reason, which the
    # message's status names.
    good = await insert_device(bare_app, mixed, "ios", "com.acme.chat")
    await insert_device(bare_app, mixed, "ios", "com.gone")
    accepted = await bare.post(
        "/api/push/send", json={"users": [mixed, stranded], "title": "t"}, headers=ADMIN
    )
    assert accepted.status_code == 202, accepted.text
    done = await settled(bare, accepted.json()["id"])
    assert done["status"] == "partially_sent" and done["counts"]["sent"] == 1
    assert done["failures"] == [
        {
            "status": "failed",
            "reason": "no APNs app is configured for bundle id com.gone",
            "devices": 2,
        },
        {
            "status": "failed",
            "reason": "no FCM app is configured for Android devices",
            "devices": 1,
        },
    ]
    delivered = await bare.get(
        f"/api/push/messages/{done['id']}/deliveries", params={"status": "sent"}, headers=ADMIN
    )
    assert [d["device_id"] for d in delivered.json()["items"]] == [good]
    # A target with no device at all is no configuration problem: sent to nobody.
    empty = await bare.post("/api/push/send", json={"users": [nobody], "title": "t"}, headers=ADMIN)
    assert empty.status_code == 202


async def test_topics_and_filters_are_checked_too(
    bare: httpx.AsyncClient, bare_app: RunningApp
) -> None:
    await set_apps(bare, TWO_IOS)
    await bare.post(
        "/api/admin/schema/apply",
        json={"document": {"collections": {"users": {"fields": {"team": "text"}}}}},
        headers=ADMIN,
    )
    user = (
        await bare.post("/api/collections/users/records", json={"team": "red"}, headers=ADMIN)
    ).json()["id"]
    device = await insert_device(bare_app, user, "ios", "com.gone")
    await bare_app.ctx.db.execute(
        "INSERT INTO baas.push_topic_devices (topic, device_id) VALUES ('news', $1)", device
    )
    await bare_app.ctx.db.execute(
        "INSERT INTO baas.push_topic_users (topic, user_id) VALUES ('crew', $1)", user
    )
    for target in ({"topics": ["news"]}, {"topics": ["crew"]}, {"filter": "team = 'red'"}):
        sent = await bare.post("/api/push/send", json={**target, "title": "t"}, headers=ADMIN)
        assert error(sent, 409, "push_not_configured")["unreachable"] == [
            {"platform": "ios", "app_id": "com.gone"}
        ], target
    await insert_device(bare_app, user, "ios", "com.acme.beta")
    for target in ({"topics": ["crew"]}, {"filter": "team = 'red'"}, {"devices": [device]}):
        sent = await bare.post("/api/push/send", json={**target, "title": "t"}, headers=ADMIN)
        if "devices" in target:  # that one device still has no app
            error(sent, 409, "push_not_configured")
        else:
            assert sent.status_code == 202, (target, sent.text)


APPS: list[dict[str, Any]] = [
    TWO_IOS,
    {"chat": TWO_IOS["chat"]},
    {"dev": {"provider": "outbox"}},
    {**TWO_IOS, "dev": {"provider": "outbox", "packages": ["com.acme.chat"]}},
    {"a": {"provider": "outbox", "platform": "android", "packages": ["p.one", "p.two"]}},
]
DEVICES = [
    (platform, app_id)
    for platform in ("ios", "android")
    for app_id in ("com.acme.chat", "com.acme.beta", "chat", "dev", "p.two", "other")
]


@pytest.mark.parametrize("apps", APPS)
async def test_the_send_check_routes_devices_as_delivery_does(
    bare: httpx.AsyncClient, bare_app: RunningApp, apps: dict[str, Any]
) -> None:
    """The send-time check (SQL) and delivery (find_app) agree on every device."""
    await set_apps(bare, apps)
    parsed = parse_apps(apps)
    for platform, app_id in DEVICES:
        device = await insert_device(bare_app, new_user(), platform, app_id)
        sent = await bare.post(
            "/api/push/send", json={"devices": [device], "title": "t"}, headers=ADMIN
        )
        routed = find_app(parsed, platform, app_id) is not None
        assert sent.status_code == (202 if routed else 409), (platform, app_id, sent.text)


@pytest.mark.parametrize(
    ("apps", "problem"),
    [
        ({"a": {"provider": "outbox", "platform": "web"}}, "ios or android, or leave it out"),
        ({"a": {"provider": "outbox", "key": "x"}}, "unknown keys ['key']"),
        ({"a": {"provider": "outbox", "bundle_id": "no spaces"}}, "bundle_id"),
        ({"a": {"provider": "outbox", "packages": "com.x"}}, "packages"),
        ({"a": {"platform": "ios", "provider": "fcm"}}, "apns for ios apps, or outbox"),
        ({"a": {"provider": "pigeon"}}, 'platform ios or android (or "provider": "outbox")'),
    ],
)
def test_bad_outbox_apps_are_refused_saying_why(apps: Any, problem: str) -> None:
    from baas.runtime_settings import SettingValueError

    with pytest.raises(SettingValueError, match=re.escape(problem)):
        parse_apps(apps)


async def test_every_code_the_push_api_answers_is_in_the_readme(
    bare: httpx.AsyncClient, bare_app: RunningApp
) -> None:
    user = new_user()
    requests: list[tuple[str, str, Any, dict[str, str]]] = [
        ("POST", "/api/push/devices", {"platform": "ios", "token": ios_token()}, as_user(user)),
        ("POST", "/api/push/send", {"users": [user], "title": "t"}, ADMIN),
    ]
    codes = await _codes(bare, requests)
    await set_apps(bare, TWO_IOS)
    await insert_device(bare_app, user, "ios", "com.gone")
    bad_values: Any = {
        "users": ["x"],
        "devices": list(range(10_001)),
        "topics": ["bad topic"],
        "filter": " ",
        "title": 1,
        "body": "x" * 1001,
        "sound": "a\x00",
        "collapse_key": "é" * 40,
        "badge": -1,
        "ttl": True,
        "priority": "urgent",
        "image": "http://x",
        "data": {"aps": 1},
        "locales": {"fr": {"title": 1}},
        "send_at": "tomorrow",
        "colour": "red",
    }
    requests = [
        ("POST", "/api/push/devices", {"platform": "ios", "token": ios_token()}, as_user(user)),
        ("POST", "/api/push/devices", {"platform": "ios"}, as_user(user)),
        ("POST", "/api/push/devices", {"platform": "x"}, as_user(user)),
        ("POST", "/api/push/devices", {"platform": "ios", "token": 1, "name": "x" * 101}, {}),
        ("POST", "/api/push/devices", {}, as_user(user)),
        ("POST", "/api/push/devices", [], as_user(user)),
        ("POST", "/api/push/send", {"users": [user], "title": "t"}, ADMIN),
        ("POST", "/api/push/send", bad_values, ADMIN),
        ("POST", "/api/push/send", {"data": {"d": _nested(300)}, "topics": ["a"]}, ADMIN),
        ("POST", "/api/push/send", {"data": {"d": "x" * 4000}, "locales": [1]}, ADMIN),
        ("POST", "/api/push/send", {"send_at": "2999-01-01T00:00:00Z", "title": "x"}, ADMIN),
        ("POST", "/api/push/send", {"filter": "nope = 1", "title": "x"}, ADMIN),
        ("POST", "/api/push/send", {"users": [user], "title": "x"}, as_user(user)),
        ("GET", f"/api/push/messages/{new_user()}", None, ADMIN),
        ("GET", "/api/push/outbox?before=x", None, ADMIN),
        ("GET", f"/api/push/outbox/{new_user()}", None, ADMIN),
        ("GET", "/api/push/outbox", None, {}),
        ("DELETE", f"/api/push/devices/{new_user()}", None, as_user(user)),
        ("POST", "/api/push/topics/news/subscribe", None, as_user(user)),
        ("POST", "/api/push/topics/news/subscribe", {"device_id": new_user()}, as_user(user)),
    ]
    codes |= await _codes(bare, requests)
    assert {"push_not_configured", "validation_failed", "unknown_field", "too_deep"} <= codes
    missing = sorted(c for c in codes if f"`{c}`" not in README)
    assert not missing, missing


async def _codes(
    api: httpx.AsyncClient, requests: list[tuple[str, str, Any, dict[str, str]]]
) -> set[str]:
    codes: set[str] = set()
    for method, url, body, headers in requests:
        response = await api.request(method, url, json=body, headers=headers)
        assert response.status_code >= 400, (method, url, response.text)
        error = response.json()["error"]
        codes.add(error["code"])
        codes |= {f["code"] for f in error.get("fields", {}).values()}
    return codes


def _tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value
