"""FCM's OAuth token request and its sends go through the guarded client: reached only when the
operator allows the fake's network, no redirect followed, and nothing the far side wrote kept in
a delivery's reason (only our words, an FCM error code or an OAuth error code)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from baas.net import AddressPolicy, OutboundClient
from baas.push.apps import parse_apps
from baas.push.fcm import FcmProvider
from baas.push.notification import Notification
from baas.push.provider import Device, Outcome
from tests.conftest import LOCAL_NETWORKS, RunningApp
from tests.net.servers import Answer, Listener, Scripted
from tests.push.conftest import ADMIN, android_token, new_user, register, send
from tests.push.fcm_server import FakeFcm

SECRET = "SECRET-from-the-far-side"


@pytest.fixture
def trap() -> Iterator[Listener]:
    with Listener("127.0.0.1") as listener:
        yield listener


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    """A server on 127.0.0.2 whose answer each test sets with `answer_with`."""
    with Scripted("127.0.0.2", lambda _: Answer()) as server:
        yield server


def answer_with(server: Scripted, answer: Answer) -> None:
    server.script = lambda _: answer


@pytest.fixture
async def outbound() -> AsyncIterator[OutboundClient]:
    client = OutboundClient(AddressPolicy.allowing(*LOCAL_NETWORKS))
    yield client
    await client.aclose()


async def send_once(
    fake: FakeFcm, outbound: OutboundClient, *, token_uri: str | None = None, url: str = ""
) -> Outcome:
    account = fake.service_account_info()
    if token_uri is not None:
        account["token_uri"] = token_uri
    app = parse_apps({"droid": {"platform": "android", "service_account": account}})["droid"]
    provider = FcmProvider(
        app, url=url or fake.endpoint_base, outbound=outbound, timeout_s=3, threads=2
    )
    try:
        device = Device("d", "android", android_token(), "droid", None)
        return await provider.send(device, Notification(title="t"))
    finally:
        await provider.close()


async def test_the_fake_fcm_is_reached_only_when_the_operator_allows_it(
    fake_fcm: FakeFcm, outbound: OutboundClient
) -> None:
    refused = await send_once(fake_fcm, OutboundClient())  # the default: nothing internal
    assert refused.verdict == "retry"
    assert refused.reason.startswith("OAuth token endpoint: http://127.0.0.1 is plain HTTP")
    assert "BAAS_OUTBOUND_ALLOW_PRIVATE" in refused.reason
    assert fake_fcm.tokens_issued == 0 and not fake_fcm.received
    sent = await send_once(fake_fcm, outbound)
    assert sent.verdict == "sent" and sent.provider_id
    assert fake_fcm.tokens_issued == 1 and len(fake_fcm.received) == 1


async def test_a_token_endpoint_redirect_is_not_followed(
    fake_fcm: FakeFcm, outbound: OutboundClient, scripted: Scripted, trap: Listener
) -> None:
    answer_with(scripted, Answer(302, {"Location": f"http://127.0.0.1:{trap.port}/token"}))
    result = await send_once(fake_fcm, outbound, token_uri=scripted.url("/token"))
    assert (result.verdict, result.reason) == (
        "retry",
        "OAuth token endpoint answered a redirect (HTTP 302), which is not followed",
    )
    assert trap.connections() == 0  # allowed (127.0.0.0/8), yet never reached
    assert scripted.requests[0].method == "POST" and not fake_fcm.received


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            Answer(500, {"Content-Type": "text/html"}, f"<h1>{SECRET}</h1>".encode()),
            "OAuth token endpoint answered HTTP 500",
        ),
        (
            Answer(400, body=orjson.dumps({"error": "invalid_grant", "error_description": SECRET})),
            "OAuth token endpoint refused the service account: invalid_grant (HTTP 400)",
        ),
        (
            Answer(401, body=orjson.dumps({"error": f"<b>{SECRET}</b>"})),
            "OAuth token endpoint answered HTTP 401",
        ),
        (
            Answer(200, body=orjson.dumps({"token": SECRET})),
            "OAuth token endpoint answered without an access token",
        ),
        (
            Answer(200, body=b"x" * 100_000),
            "OAuth token endpoint: 127.0.0.2's answer is larger than 65536 bytes",
        ),
    ],
)
async def test_what_the_token_endpoint_says_is_never_kept(
    fake_fcm: FakeFcm, outbound: OutboundClient, scripted: Scripted, answer: Answer, reason: str
) -> None:
    answer_with(scripted, answer)
    result = await send_once(fake_fcm, outbound, token_uri=scripted.url("/token"))
    assert (result.verdict, result.reason) == ("retry", reason)
    assert SECRET not in result.reason
    assert scripted.requests[0].body.startswith(b"grant_type=urn%3Aietf%3Aparams%3Aoauth")


def fcm_error(status: str, message: str, code: str | None = None) -> bytes:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]
    return orjson.dumps(
        {"error": {"status": status, "message": message, "details": details if code else []}}
    )


@pytest.mark.parametrize(
    ("answer", "verdict", "reason"),
    [
        (
            Answer(400, body=fcm_error("INVALID_ARGUMENT", SECRET)),
            "failed",
            "INVALID_ARGUMENT (HTTP 400)",
        ),
        (Answer(403, body=fcm_error(f"<{SECRET}>", SECRET, f"A {SECRET}")), "failed", "HTTP 403"),
        (Answer(500, body=SECRET.encode()), "retry", "HTTP 500"),
        (Answer(404, body=fcm_error("NOT_FOUND", SECRET, "UNREGISTERED")), "dead", "UNREGISTERED"),
    ],
)
async def test_what_fcm_says_is_kept_as_codes_only(
    fake_fcm: FakeFcm,
    outbound: OutboundClient,
    scripted: Scripted,
    answer: Answer,
    verdict: str,
    reason: str,
) -> None:
    answer_with(scripted, answer)
    result = await send_once(fake_fcm, outbound, url=scripted.url("/v1/projects"))
    assert (result.verdict, result.reason) == (verdict, reason)
    assert scripted.requests[0].path.endswith("/messages:send")


async def test_an_fcm_redirect_is_not_followed_and_odd_message_names_are_not_kept(
    fake_fcm: FakeFcm, outbound: OutboundClient, scripted: Scripted, trap: Listener
) -> None:
    url = scripted.url("/v1/projects")
    answer_with(scripted, Answer(307, {"Location": f"http://127.0.0.1:{trap.port}/"}))
    redirected = await send_once(fake_fcm, outbound, url=url)
    assert (redirected.verdict, redirected.reason) == (
        "retry",
        "FCM answered a redirect, which is not followed",
    )
    assert trap.connections() == 0
    answer_with(scripted, Answer(200, body=orjson.dumps({"name": SECRET})))
    sent = await send_once(fake_fcm, outbound, url=url)
    assert (sent.verdict, sent.provider_id) == ("sent", None)


async def deliveries_with_reason(api: httpx.AsyncClient, message_id: str) -> list[dict[str, Any]]:
    async with asyncio.timeout(10):
        while True:
            page = await api.get(f"/api/push/messages/{message_id}/deliveries", headers=ADMIN)
            items: list[dict[str, Any]] = page.json()["items"]
            if items and all(d["reason"] for d in items):
                return items
            await asyncio.sleep(0.05)


async def test_a_delivery_reason_read_through_the_api_holds_no_far_side_text(
    push_app: RunningApp, api: httpx.AsyncClient, fake_fcm: FakeFcm, scripted: Scripted
) -> None:
    """The whole path: an admin points token_uri at a server (allowed: 127.0.0.0/8) that answers
    with a page of its own; the API shows our words only."""
    answer_with(scripted, Answer(500, {"Content-Type": "text/html"}, f"<p>{SECRET}</p>".encode()))
    account = {**fake_fcm.service_account_info(), "token_uri": scripted.url("/token")}
    apps = {"droid": {"platform": "android", "service_account": account}}
    configured = await api.patch("/api/admin/settings", json={"push.apps": apps}, headers=ADMIN)
    assert configured.status_code == 200, configured.text
    async with asyncio.timeout(5):
        while "droid" not in push_app.ctx.runtime["push.apps"]:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    user = new_user()
    await register(api, user, "android", android_token())
    message = await send(api, users=[user], title="t")
    [delivery] = await deliveries_with_reason(api, message["id"])
    assert delivery["reason"] == "OAuth token endpoint answered HTTP 500"
    assert scripted.requests  # the far side was asked, and its page went nowhere
