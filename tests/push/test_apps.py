"""The "push.apps" and "push.topics" settings and how a device finds its app; notification
texts per locale; provider answers (FCM's error JSON) as outcomes."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from baas.errors import ValidationFailed
from baas.push.apps import find_app, parse_apps
from baas.push.fcm import outcome
from baas.push.notification import Notification, parse_send
from baas.push.topics import parse_topics
from baas.runtime_settings import SettingValueError, parse_changes
from tests.push.apns_server import make_apns_key

P8, _ = make_apns_key()
RSA_KEY = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode()
)
ACCOUNT = {
    "type": "service_account",
    "project_id": "proj-a",
    "private_key": RSA_KEY,
    "client_email": "push@proj-a.iam.gserviceaccount.com",
    "token_uri": "https://oauth2.googleapis.com/token",
}


def ios(bundle: str, **more: Any) -> dict[str, Any]:
    return {
        "platform": "ios",
        "bundle_id": bundle,
        "team_id": "TEAM123456",
        "key_id": "KEY1234567",
        "key": P8,
        **more,
    }


def android(project: str, **more: Any) -> dict[str, Any]:
    return {"platform": "android", "service_account": {**ACCOUNT, "project_id": project}, **more}


def test_devices_find_their_app_by_name_bundle_package_or_project() -> None:
    apps = parse_apps(
        {
            "chat": ios("com.acme.chat"),
            "chat-beta": ios("com.acme.chat.beta", sandbox=True),
            "droid": android("proj-a", packages=["com.acme.chat"]),
            "droid2": android("proj-b"),
        }
    )
    assert find_app(apps, "ios", "com.acme.chat.beta").name == "chat-beta"  # type: ignore[union-attr]
    assert find_app(apps, "ios", "chat").name == "chat"  # type: ignore[union-attr]
    assert find_app(apps, "android", "com.acme.chat").name == "droid"  # type: ignore[union-attr]
    assert find_app(apps, "android", "proj-b").name == "droid2"  # type: ignore[union-attr]
    assert find_app(apps, "ios", "com.other") is None  # two iOS apps: no guessing
    single = parse_apps({"only": ios("com.acme.chat")})
    assert find_app(single, "ios", "anything").name == "only"  # type: ignore[union-attr]
    assert find_app(single, "android", "x") is None


@pytest.mark.parametrize(
    ("apps", "problem"),
    [
        ([], "must be an object"),
        ({"bad name!": ios("a.b")}, "app name"),
        ({"a": {"platform": "windows"}}, "platform ios or android"),
        ({"a": ios("a.b", colour=1)}, "unknown keys"),
        ({"a": ios("a.b", team_id="short")}, "team_id"),
        ({"a": ios("a.b", key="-----BEGIN PRIVATE KEY-----\nnope")}, ".p8"),
        ({"a": ios("a.b", sandbox="yes")}, "sandbox"),
        ({"a": android("p", service_account={"type": "user"})}, "service account JSON"),
        ({"a": {"platform": "android", "service_account": {**ACCOUNT, "private_key": P8}}}, "RSA"),
        (
            {
                "a": {
                    "platform": "android",
                    "service_account": {**ACCOUNT, "token_uri": "ftp://evil.example/t"},
                }
            },
            r"token_uri: must be an https://",
        ),
    ],
)
def test_bad_apps_are_refused_saying_why(apps: Any, problem: str) -> None:
    with pytest.raises(SettingValueError, match=problem):
        parse_apps(apps)


def test_the_setting_goes_through_the_runtime_settings_table() -> None:
    assert parse_changes({"push.apps": {"a": ios("a.b")}}) == {"push.apps": {"a": ios("a.b")}}
    with pytest.raises(Exception, match="invalid"):
        parse_changes({"push.apps": {"a": {"platform": "ios"}}})


def test_topic_rules() -> None:
    assert parse_topics({"news": "", "team-*": "team = auth.team", "*": ""})["team-*"]
    for bad in ({"bad topic": ""}, {"news": 1}, []):
        with pytest.raises(SettingValueError):
            parse_topics(bad)


def test_a_device_gets_the_texts_of_its_locale_else_its_language_else_the_default() -> None:
    note = Notification(
        title="Hi",
        body="Hello",
        locales={"pt_BR": {"title": "Oi"}, "pt": {"title": "Olá", "body": "Olá!"}},
    )
    assert note.for_locale("pt_BR").title == "Oi" and note.for_locale("pt_BR").body == "Hello"
    assert note.for_locale("pt-PT").title == "Olá"
    assert note.for_locale("de").title == "Hi" and note.for_locale(None).title == "Hi"


def _error(status: str, code: str | None, message: str = "") -> bytes:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]
    import orjson

    return orjson.dumps(
        {"error": {"status": status, "message": message, "details": details if code else []}}
    )


@pytest.mark.parametrize(
    ("status", "body", "retry_after", "verdict", "reason"),
    [
        (200, b'{"name": "projects/p/messages/1"}', None, "sent", ""),
        (404, _error("NOT_FOUND", "UNREGISTERED"), None, "dead", "UNREGISTERED"),
        (
            403,
            _error("PERMISSION_DENIED", "SENDER_ID_MISMATCH"),
            None,
            "dead",
            "SENDER_ID_MISMATCH",
        ),
        (
            400,
            _error(
                "INVALID_ARGUMENT",
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
            ),
            None,
            "dead",
            "INVALID_ARGUMENT: not a valid registration token",
        ),
        # FCM's message is far-side text: only its codes are kept (the message goes to the log).
        (
            400,
            _error("INVALID_ARGUMENT", "INVALID_ARGUMENT", "Message is too big"),
            None,
            "failed",
            "INVALID_ARGUMENT (HTTP 400)",
        ),
        (429, _error("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), "30", "retry", "QUOTA_EXCEEDED"),
        (503, _error("UNAVAILABLE", "UNAVAILABLE"), None, "retry", "UNAVAILABLE"),
        (502, b"<html>bad gateway</html>", None, "retry", "HTTP 502"),
        # A 404 without UNREGISTERED (a wrong project or URL) says nothing about the token: the
        # device must stay enabled, or one bad setting disables every Android device.
        (404, b"<html>not found</html>", None, "failed", "HTTP 404"),
        (
            404,
            _error("NOT_FOUND", None, "Requested entity was not found."),
            None,
            "failed",
            "NOT_FOUND (HTTP 404)",
        ),
    ],
)
def test_fcm_answers_become_outcomes(
    status: int, body: bytes, retry_after: str | None, verdict: str, reason: str
) -> None:
    result = outcome(status, body, retry_after)
    assert (result.verdict, result.reason) == (verdict, reason)
    if retry_after:
        assert result.retry_after_s == 30


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"image": "https://[abc"}, "image"),  # urlsplit raises on a broken IPv6 host
        ({"data": {"deep": _nested(300)}}, "data"),  # deeper than orjson writes
    ],
)
def test_send_values_the_parsers_choke_on_are_refused_not_crashed(
    extra: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_send({"topics": ["news"], "title": "t", **extra})
    assert set(refused.value.fields) == {field}
