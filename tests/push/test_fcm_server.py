"""The fake FCM against the real pyfcm and google-auth: OAuth 2.0 service-account tokens, the
messages:send answers Google gives (success, unregistered, invalid, quota, unavailable), and the
fake's faults (fail_next, set_down, response_delay_s)."""

from __future__ import annotations

import functools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import google.auth.transport.requests
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import RefreshError
from pyfcm import FCMNotification
from pyfcm.errors import FCMNotRegisteredError, InvalidDataError

from tests.push.fcm_server import (
    FCM_SCOPE,
    JWT_BEARER,
    UNAUTHENTICATED_MESSAGE,
    FakeFcm,
    close_session,
    credentials_for,
    pyfcm_client,
    with_other_key,
)

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def new_token() -> str:
    return "fcm-" + secrets.token_urlsafe(48)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeFcm]:
    with FakeFcm() as server:
        yield server


@pytest.fixture
def fcm(fake: FakeFcm) -> Iterator[FCMNotification]:
    """pyfcm without retries of its own (RawFCMNotification): every answer comes back as is."""
    client = pyfcm_client(fake)
    yield client
    close_session(client)


def payload(fcm: FCMNotification, token: str, **fields: Any) -> bytes:
    return fcm.parse_payload(fcm_token=token, notification_title="Hi", **fields)  # type: ignore[no-any-return]


def error_of(response: requests.Response) -> dict[str, Any]:
    return response.json()["error"]  # type: ignore[no-any-return]


def error_codes(response: requests.Response) -> list[str]:
    return [
        d["errorCode"] for d in error_of(response).get("details", []) if d["@type"] == FCM_ERROR
    ]


def violations(response: requests.Response) -> list[str]:
    details = error_of(response).get("details", [])
    return [
        v.get("field", "")
        for d in details
        if d["@type"] == BAD_REQUEST
        for v in d["fieldViolations"]
    ]


# -- OAuth 2.0 -----------------------------------------------------------------------------------


def test_one_access_token_serves_many_sends(fake: FakeFcm, fcm: FCMNotification) -> None:
    issued = fake.tokens_issued
    token = new_token()
    answers = [fcm.send_request(payload(fcm, token), 5) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert fake.tokens_issued == issued + 1
    assert fake.count(token) == 5


def test_service_account_info_is_a_key_file(fake: FakeFcm) -> None:
    info = fake.service_account_info()
    assert info["type"] == "service_account"
    assert info["project_id"] == fake.project_id
    assert info["token_uri"] == fake.token_uri == fake.url + "/token"
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8
    assert info["client_email"].endswith(".iam.gserviceaccount.com")
    assert {"private_key_id", "client_id", "auth_uri"} <= info.keys()
    creds = credentials_for(info)
    creds.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
    assert str(creds.token).startswith("ya29.")
    assert creds.expiry is not None


def test_a_key_the_fake_does_not_know_is_refused(fake: FakeFcm) -> None:
    issued = fake.tokens_issued
    info = with_other_key(fake.service_account_info())
    with pytest.raises(RefreshError, match="Invalid JWT Signature"):
        credentials_for(info).refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
    client = pyfcm_client(fake, info=info)
    try:
        with pytest.raises(InvalidDataError) as raised:  # pyfcm wraps the RefreshError
            client.notify(fcm_token=new_token(), notification_title="Hi")
    finally:
        close_session(client)
    assert isinstance(raised.value.args[0], RefreshError)
    assert fake.tokens_issued == issued


def assertion(info: dict[str, Any], **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": info["client_email"], "aud": info["token_uri"], "scope": FCM_SCOPE,
            "iat": now, "exp": now + 3600, **claims}  # fmt: skip
    body = {name: value for name, value in body.items() if value is not None}
    headers = {"kid": info["private_key_id"]}
    return jwt.encode(body, private_key(info["private_key"]), algorithm="RS256", headers=headers)


@functools.cache
def private_key(pem: str) -> rsa.RSAPrivateKey:
    return cast(rsa.RSAPrivateKey, serialization.load_pem_private_key(pem.encode(), password=None))


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"aud": "https://example.com/token"}, "invalid_grant", "Failed audience check"),
        ({"iss": "someone@else.iam.gserviceaccount.com"}, "invalid_grant", "account not found"),
        ({"exp": int(time.time()) - 4000, "iat": int(time.time()) - 7600}, "invalid_grant",
         "short-lived"),
        ({"exp": int(time.time()) + 7200}, "invalid_grant", "short-lived"),
        ({"iat": None}, "invalid_grant", "short-lived"),
        ({"scope": "https://www.googleapis.com/auth/userinfo.email"}, "invalid_scope", "scope"),
    ],
)  # fmt: skip
def test_token_endpoint_checks_the_assertion(
    fake: FakeFcm, claims: dict[str, Any], error: str, description: str
) -> None:
    form = {"grant_type": JWT_BEARER, "assertion": assertion(fake.service_account_info(), **claims)}
    answer = requests.post(fake.token_uri, data=form, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"] == error
    assert description in answer.json()["error_description"]


def test_token_endpoint_answers_like_google(fake: FakeFcm) -> None:
    info = fake.service_account_info()
    granted = requests.post(
        fake.token_uri, data={"grant_type": JWT_BEARER, "assertion": assertion(info)}, timeout=5
    )
    assert granted.status_code == 200
    assert granted.json().keys() == {"access_token", "expires_in", "token_type"}
    assert granted.json()["expires_in"] == 3600
    assert granted.json()["token_type"] == "Bearer"
    wrong_grant = requests.post(fake.token_uri, data={"grant_type": "password"}, timeout=5)
    assert wrong_grant.json()["error"] == "unsupported_grant_type"


def test_unknown_bearer_is_unauthenticated(fake: FakeFcm) -> None:
    url = f"{fake.endpoint_base}/{fake.project_id}/messages:send"
    body = {"message": {"token": new_token()}}
    for headers in ({}, {"Authorization": "Bearer ya29.not-issued"}):
        answer = requests.post(url, json=body, headers=headers, timeout=5)
        assert answer.status_code == 401
        assert answer.json() == {
            "error": {"code": 401, "message": UNAUTHENTICATED_MESSAGE, "status": "UNAUTHENTICATED"}
        }


def test_pyfcm_fetches_a_new_token_when_told_its_token_expired(fake: FakeFcm) -> None:
    client = pyfcm_client(fake, raw=False)  # pyfcm's own send_request retries on this 401
    try:
        token = new_token()
        client.notify(fcm_token=token, notification_title="Hi")
        issued = fake.tokens_issued
        fake.expire_tokens()
        assert client.notify(fcm_token=token, notification_title="Again")["name"]
    finally:
        close_session(client)
    assert fake.tokens_issued == issued + 1
    assert fake.count(token) == 2


# -- messages:send -------------------------------------------------------------------------------


def test_a_message_is_recorded_as_sent(fake: FakeFcm, fcm: FCMNotification) -> None:
    token = new_token()
    body = fcm.parse_payload(
        fcm_token=token,
        notification_title="New message",
        notification_body="Ann: hello",
        data_payload={"chat": "42", "kind": "message"},
        android_config={"priority": "HIGH", "ttl": "3600s", "collapse_key": "chat-42"},
        apns_config={"payload": {"aps": {"badge": 3}}},
    )
    answer = fcm.send_request(body, 5)
    assert answer.status_code == 200
    assert re.fullmatch(
        rf"projects/{fake.project_id}/messages/0:\d+%[0-9a-f]+", answer.json()["name"]
    )
    assert fake.received[-1] == {
        "token": token,
        "notification": {"title": "New message", "body": "Ann: hello"},
        "data": {"chat": "42", "kind": "message"},
        "android": {"priority": "HIGH", "ttl": "3600s", "collapse_key": "chat-42"},
        "apns": {"payload": {"aps": {"badge": 3}}},
    }
    assert fake.count(token) == 1


def test_untouched_pyfcm_notify(fake: FakeFcm) -> None:
    client = pyfcm_client(fake, raw=False)
    dead = new_token()
    fake.dead_tokens.add(dead)
    try:
        sent = client.notify(
            fcm_token=new_token(), notification_title="Hi", data_payload={"a": "b"}
        )
        assert sent["name"].startswith(f"projects/{fake.project_id}/messages/")
        topic = client.notify(topic_name="news", notification_body="Extra")
        assert topic["name"]
        with pytest.raises(FCMNotRegisteredError):
            client.notify(fcm_token=dead, notification_title="Hi")
    finally:
        close_session(client)
    assert fake.received[-1] == {"topic": "news", "notification": {"body": "Extra"}}


def test_validate_only_is_answered_but_not_delivered(fake: FakeFcm, fcm: FCMNotification) -> None:
    token = new_token()
    answer = fcm.send_request(
        fcm.parse_payload(fcm_token=token, notification_title="Hi", dry_run=True), 5
    )
    assert answer.status_code == 200
    assert answer.json() == {"name": f"projects/{fake.project_id}/messages/fake_message_id"}
    assert fake.count(token) == 0


def test_an_unregistered_token_is_not_found(fake: FakeFcm, fcm: FCMNotification) -> None:
    token = new_token()
    fake.dead_tokens.add(token)
    answer = fcm.send_request(payload(fcm, token), 5)
    assert answer.status_code == 404
    assert answer.json() == {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
            "details": [{"@type": FCM_ERROR, "errorCode": "UNREGISTERED"}],
        }
    }
    with pytest.raises(FCMNotRegisteredError):
        fcm.parse_response(answer)
    assert fake.count(token) == 0


@pytest.mark.parametrize("token", ["abc", "fcm-" + "x" * 30 + "!", "fcm token with spaces here"])
def test_a_malformed_token_is_an_invalid_argument(
    fake: FakeFcm, fcm: FCMNotification, token: str
) -> None:
    answer = fcm.send_request(payload(fcm, token), 5)
    assert answer.status_code == 400
    error = error_of(answer)
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == "The registration token is not a valid FCM registration token"
    assert error_codes(answer) == ["INVALID_ARGUMENT"]
    assert violations(answer) == ["message.token"]
    with pytest.raises(InvalidDataError):
        fcm.parse_response(answer)


TOKEN = new_token()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", ""),
        ({"validate_only": False}, "message"),
        ({"message": {"token": TOKEN, "topic": "news"}}, "message"),
        ({"message": {"token": TOKEN, "data": {"n": 1}}}, "message.data[0].value"),
        (
            {"message": {"token": TOKEN, "android": {"priority": "urgent"}}},
            "message.android.priority",
        ),
        ({"message": {"token": TOKEN, "android": {"ttl": "1h"}}}, "message.android.ttl"),
        ({"message": {"token": TOKEN, "android": {"ttl": 3600}}}, "message.android.ttl"),
        ({"message": {"token": TOKEN, "notification": {"title": 5}}}, "message.notification.title"),
        ({"message": {"token": TOKEN, "badge": 1}}, "message"),
        ({"message": {"token": TOKEN, "data": {"blob": "x" * 5000}}}, "message"),
    ],
)
def test_malformed_messages_are_invalid_arguments(
    fake: FakeFcm, fcm: FCMNotification, body: bytes | dict[str, Any], field: str
) -> None:
    sent = len(fake.received)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = fcm.send_request(raw, 5)
    assert answer.status_code == 400, answer.text
    assert error_of(answer)["status"] == "INVALID_ARGUMENT"
    assert error_codes(answer) == ["INVALID_ARGUMENT"]
    assert violations(answer) == [field]
    assert len(fake.received) == sent


def test_the_message_size_limit(fake: FakeFcm, fcm: FCMNotification) -> None:
    too_big = fcm.send_request(payload(fcm, new_token(), data_payload={"blob": "é" * 2100}), 5)
    assert too_big.status_code == 400
    assert error_of(too_big)["message"] == "Message is too big"
    fits = fcm.send_request(payload(fcm, new_token(), data_payload={"blob": "x" * 3900}), 5)
    assert fits.status_code == 200


def test_another_project_is_a_sender_id_mismatch(fake: FakeFcm) -> None:
    # pyfcm takes the project from the credentials, before its own project_id argument.
    client = pyfcm_client(fake, info={**fake.service_account_info(), "project_id": "other-project"})
    try:
        answer = client.send_request(payload(client, new_token()), 5)
    finally:
        close_session(client)
    assert answer.status_code == 403
    assert error_of(answer)["status"] == "PERMISSION_DENIED"
    assert error_codes(answer) == ["SENDER_ID_MISMATCH"]


# -- faults --------------------------------------------------------------------------------------


def test_quota_exceeded_with_retry_after(fake: FakeFcm, fcm: FCMNotification) -> None:
    token = new_token()
    fake.fail_next(1, 429, retry_after=3)
    limited = fcm.send_request(payload(fcm, token), 5)
    assert limited.status_code == 429
    assert limited.headers.get("Retry-After") == "3"
    assert error_of(limited)["status"] == "RESOURCE_EXHAUSTED"
    assert error_codes(limited) == ["QUOTA_EXCEEDED"]
    assert fcm.send_request(payload(fcm, token), 5).status_code == 200
    assert fake.count(token) == 1


@pytest.mark.parametrize(("status", "name"), [(503, "UNAVAILABLE"), (500, "INTERNAL")])
def test_server_errors_then_success(
    fake: FakeFcm, fcm: FCMNotification, status: int, name: str
) -> None:
    token = new_token()
    fake.fail_next(2, status)
    answers = [fcm.send_request(payload(fcm, token), 5) for _ in range(3)]
    assert [a.status_code for a in answers] == [status, status, 200]
    assert [error_of(a)["status"] for a in answers[:2]] == [name, name]
    assert error_codes(answers[0]) == [name]
    assert "Retry-After" not in answers[0].headers
    assert fake.count(token) == 1


def test_failures_armed_one_after_another_come_in_order(
    fake: FakeFcm, fcm: FCMNotification
) -> None:
    fake.fail_next(1, 503)
    fake.fail_next(1, 429, retry_after=1)
    answers = [fcm.send_request(payload(fcm, new_token()), 5) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 429, 200]
    assert answers[1].headers.get("Retry-After") == "1"


def test_down_refuses_connections_and_up_serves_on_the_same_port(
    fake: FakeFcm, fcm: FCMNotification
) -> None:
    token = new_token()
    assert fcm.send_request(payload(fcm, token), 5).status_code == 200  # a keep-alive connection
    url = fake.url
    fake.set_down(True)
    try:
        with pytest.raises(requests.ConnectionError):
            fcm.send_request(payload(fcm, token), 5)
        with pytest.raises(requests.ConnectionError):
            requests.post(fake.token_uri, data={}, timeout=5)
    finally:
        fake.set_down(False)
    assert fake.url == url
    assert fcm.send_request(payload(fcm, token), 5).status_code == 200
    assert fake.count(token) == 2


def test_a_slow_answer_does_not_hold_up_others(fake: FakeFcm, fcm: FCMNotification) -> None:
    fcm.send_request(payload(fcm, new_token()), 5)  # the access token, fetched before timing
    fake.response_delay_s = 0.3
    took: list[float] = []

    def send() -> None:
        started = time.monotonic()
        try:
            assert fcm.send_request(payload(fcm, new_token()), 5).status_code == 200
            took.append(time.monotonic() - started)
        finally:
            close_session(fcm)

    threads = [threading.Thread(target=send) for _ in range(4)]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        fake.response_delay_s = 0.0
    assert len(took) == 4
    assert min(took) >= 0.3
    assert time.monotonic() - started < 0.9  # four delays at once, not one after another


def test_sends_from_many_threads_are_all_recorded(fake: FakeFcm, fcm: FCMNotification) -> None:
    tokens = [new_token() for _ in range(8)]
    issued = fake.tokens_issued
    statuses: list[int] = []

    def send(token: str) -> None:
        try:
            statuses.extend(fcm.send_request(payload(fcm, token), 5).status_code for _ in range(25))
        finally:
            close_session(fcm)

    threads = [threading.Thread(target=send, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 200
    assert [fake.count(token) for token in tokens] == [25] * 8
    assert sum(m.get("token") in tokens for m in fake.received) == 200
    # pyfcm keeps a session per thread and fetches a token for each new one
    assert fake.tokens_issued == issued + 8


def test_stop_leaves_no_thread_or_port_behind() -> None:
    before = set(threading.enumerate())
    fake = FakeFcm(project_id="short-lived")
    with fake:
        fake.set_down(True)
        fake.set_down(False)
        assert requests.post(fake.token_uri, data={}, timeout=5).status_code == 400
    assert set(threading.enumerate()) == before
    with pytest.raises(requests.ConnectionError):
        requests.post(fake.token_uri, data={}, timeout=5)
    FakeFcm().stop()  # never started: its bound socket is closed all the same
