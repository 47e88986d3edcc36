"""The local APNs against the real aioapns client (and, for what aioapns cannot send, a bare h2
client): accepted notifications are recorded with their headers, each of Apple's rejections comes
back with its status and reason, scripted failures and outages behave as Apple's would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioapns
import jwt
import pytest
from aioapns.exceptions import MaxAttemptsExceeded
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, Event, ResponseReceived, StreamEnded
from h2.settings import SettingCodes, Settings

from tests.push.apns_server import FakeApns, close_client, local_client, make_apns_key, point_at

TEAM_ID = "TEAM123456"
KEY_ID = "KEY7654321"
TOPIC = "com.example.app"
TOKEN = "ab" * 32
DEAD = "cd" * 32
ALERT = {"aps": {"alert": {"title": "Hi", "body": "there"}}}


@pytest.fixture(scope="module")
def apns_key() -> tuple[str, bytes]:
    return make_apns_key()


@pytest.fixture
def fake(apns_key: tuple[str, bytes]) -> Iterator[FakeApns]:
    with FakeApns(
        team_id=TEAM_ID, key_id=KEY_ID, public_key_pem=apns_key[1], topics={TOPIC}
    ) as server:
        server.dead_tokens.add(DEAD)
        yield server


@pytest.fixture
async def client(fake: FakeApns, apns_key: tuple[str, bytes]) -> AsyncIterator[aioapns.APNs]:
    apns = local_client(fake, key=apns_key[0], topic=TOPIC, max_connection_attempts=1)
    yield apns
    await close_client(apns)


def _request(token: str = TOKEN, **fields: Any) -> aioapns.NotificationRequest:
    fields.setdefault("message", ALERT)
    return aioapns.NotificationRequest(device_token=token, **fields)


async def _send(apns: aioapns.APNs, request: aioapns.NotificationRequest) -> Any:
    async with asyncio.timeout(5):
        return await apns.send_notification(request)


async def test_a_notification_is_accepted_and_recorded_with_its_headers(
    fake: FakeApns, client: aioapns.APNs
) -> None:
    request = _request(
        push_type=aioapns.PushType.ALERT, priority=10, collapse_key="chat-1", time_to_live=60
    )
    result = await _send(client, request)

    assert result.is_successful and result.status == "200"
    assert result.notification_id == request.notification_id
    [received] = fake.received
    assert received.token == TOKEN
    assert received.topic == TOPIC
    assert received.push_type == "alert"
    assert received.priority == "10"
    assert received.collapse_id == "chat-1"
    assert received.expiration is not None
    assert abs(int(received.expiration) - (time.time() + 60)) < 5
    assert received.apns_id == request.notification_id
    assert received.payload == ALERT
    assert fake.count(TOKEN) == 1


async def test_a_dead_token_is_unregistered_with_a_timestamp(
    fake: FakeApns, client: aioapns.APNs
) -> None:
    result = await _send(client, _request(DEAD))

    assert (result.status, result.description) == ("410", "Unregistered")
    assert abs(result.timestamp - time.time() * 1000) < 5000
    assert fake.received == []


@pytest.mark.parametrize(
    ("request_fields", "status", "reason"),
    [
        ({"token": "not-a-token"}, "400", "BadDeviceToken"),
        ({"token": "ab" * 31}, "400", "BadDeviceToken"),
        ({"token": "a" * 65}, "400", "BadDeviceToken"),
        ({"token": "ab" * 101}, "400", "BadDeviceToken"),
        ({"apns_topic": "com.other.app"}, "400", "TopicDisallowed"),
        ({"priority": 3}, "400", "BadPriority"),
        ({"collapse_key": "c" * 65}, "400", "BadCollapseId"),
        ({"notification_id": "not-a-uuid"}, "400", "BadMessageId"),
        ({"message": {"aps": {"alert": "x" * 4100}}}, "413", "PayloadTooLarge"),
        ({"message": {"alert": "no aps"}}, "400", "PayloadEmpty"),
    ],
)
async def test_a_bad_request_is_rejected_with_apples_reason(
    fake: FakeApns,
    client: aioapns.APNs,
    request_fields: dict[str, Any],
    status: str,
    reason: str,
) -> None:
    result = await _send(client, _request(**request_fields))

    assert (result.status, result.description) == (status, reason)
    assert fake.received == []


async def test_a_token_signed_with_another_key_is_invalid(fake: FakeApns) -> None:
    other_key, _ = make_apns_key()
    apns = local_client(fake, key=other_key, topic=TOPIC)
    try:
        result = await _send(apns, _request())
    finally:
        await close_client(apns)

    assert (result.status, result.description) == ("403", "InvalidProviderToken")
    assert fake.received == []


async def test_scripted_failures_come_first_then_sends_succeed(
    fake: FakeApns, client: aioapns.APNs
) -> None:
    fake.fail_next(2, 503)
    fake.fail_next(1, 429)

    answers = [await _send(client, _request()) for _ in range(4)]

    assert [(a.status, a.description) for a in answers] == [
        ("503", "ServiceUnavailable"),
        ("503", "ServiceUnavailable"),
        ("429", "TooManyRequests"),
        ("200", None),
    ]
    assert fake.count(TOKEN) == 1


async def test_too_many_requests(fake: FakeApns, client: aioapns.APNs) -> None:
    fake.fail_next(1, 429)

    result = await _send(client, _request())

    assert (result.status, result.description) == ("429", "TooManyRequests")
    assert (await _send(client, _request())).is_successful


async def test_concurrent_sends_over_one_client_all_arrive(
    fake: FakeApns, client: aioapns.APNs
) -> None:
    tokens = [f"{i:064x}" for i in range(200)]

    results = await asyncio.gather(*(_send(client, _request(t)) for t in tokens))

    assert all(r.is_successful for r in results)
    assert sorted(r.token for r in fake.received) == sorted(tokens)
    assert all(fake.count(t) == 1 for t in tokens)


async def test_a_slow_answer_holds_no_other_stream(fake: FakeApns, client: aioapns.APNs) -> None:
    await _send(client, _request())  # connected before the clock starts
    fake.response_delay_s = 0.2
    started = time.monotonic()

    results = await asyncio.gather(*(_send(client, _request()) for _ in range(50)))

    assert all(r.is_successful for r in results)
    assert 0.2 <= time.monotonic() - started < 1.5  # one after another would take 10 s


async def test_an_outage_fails_sends_until_the_server_is_back(
    fake: FakeApns, client: aioapns.APNs
) -> None:
    assert (await _send(client, _request())).is_successful
    port = fake.port

    fake.set_down(True)
    # The dropped connection fails the send that tries it (ConnectionClosed, retried while
    # attempts last: max_connection_attempts=1 here) ...
    with pytest.raises(MaxAttemptsExceeded):
        await _send(client, _request())
    # ... and a refused new one too (aioapns's ConnectionError, retried after a 1 s pause).
    started = time.monotonic()
    with pytest.raises(MaxAttemptsExceeded):
        await _send(client, _request())
    assert time.monotonic() - started >= 1

    fake.set_down(False)
    assert fake.port == port
    assert (await _send(client, _request())).is_successful
    assert fake.count(TOKEN) == 2


# -- what aioapns cannot send: a bare HTTP/2 client ------------------------------------------


def _provider_token(key: str, *, kid: str = KEY_ID, iss: str = TEAM_ID, age_s: int = 0) -> str:
    issued_at = int(time.time()) - age_s
    return jwt.encode({"iss": iss, "iat": issued_at}, key, algorithm="ES256", headers={"kid": kid})


class _Bare:
    """A bare HTTP/2 client on one connection, for what aioapns cannot send."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: H2Connection
    ) -> None:
        self._reader, self._writer, self._conn = reader, writer, conn

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, fake: FakeApns, window: int | None = None) -> AsyncIterator[_Bare]:
        """Connected; `window` is the initial flow-control window of each stream."""
        reader, writer = await asyncio.open_connection(fake.host, fake.port, ssl=fake.ssl_context())
        conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        if window is not None:
            conn.local_settings = Settings(
                client=True, initial_values={SettingCodes.INITIAL_WINDOW_SIZE: window}
            )
        conn.initiate_connection()
        try:
            yield cls(reader, writer, conn)
        finally:
            writer.close()
            await writer.wait_closed()

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
        stream_id = self._conn.get_next_available_stream_id()
        pseudo = [(":method", method), (":scheme", "https"), (":authority", "127.0.0.1")]
        self._conn.send_headers(
            stream_id, [*pseudo, (":path", path), *headers.items()], end_stream=not body
        )
        if body:
            self._conn.send_data(stream_id, body, end_stream=True)
        self._writer.write(self._conn.data_to_send())
        return stream_id

    def open_window(self, stream_id: int, size: int) -> None:
        self._conn.increment_flow_control_window(size, stream_id)
        self._writer.write(self._conn.data_to_send())

    async def events(self, seconds: float, until_end: bool = True) -> list[Event]:
        """What arrives within `seconds`, stopping early at a stream's end if `until_end`."""
        events: list[Event] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not (until_end and any(isinstance(e, StreamEnded) for e in events)):
                    chunk = await self._reader.read(65536)
                    assert chunk, "the server closed the connection"
                    events += self._conn.receive_data(chunk)
                    self._writer.write(self._conn.data_to_send())
        return events


def _answer(events: list[Event]) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The response's headers and its JSON body, if any."""
    [response] = [e for e in events if isinstance(e, ResponseReceived)]
    assert any(isinstance(e, StreamEnded) for e in events), "the response did not end"
    data = b"".join(e.data for e in events if isinstance(e, DataReceived))
    headers: dict[str, str] = dict(response.headers)  # type: ignore[arg-type]
    return headers, json.loads(data) if data else None


async def _raw(
    fake: FakeApns, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """One request over a fresh connection: the response's headers and JSON body (if any)."""
    async with _Bare.connect(fake) as bare:
        bare.send(method, path, headers, body)
        return _answer(await bare.events(5))


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("get", "405", "MethodNotAllowed"),
        ("other path", "404", "BadPath"),
        ("no token in path", "400", "MissingDeviceToken"),
        ("no authorization", "403", "MissingProviderToken"),
        ("old provider token", "403", "ExpiredProviderToken"),
        ("future provider token", "403", "InvalidProviderToken"),
        ("other key id", "403", "InvalidProviderToken"),
        ("other team", "403", "InvalidProviderToken"),
        ("not a jwt", "403", "InvalidProviderToken"),
        ("no topic", "400", "MissingTopic"),
        ("unknown push type", "400", "InvalidPushType"),
        ("expiration not a number", "400", "BadExpirationDate"),
        ("empty body", "400", "PayloadEmpty"),
        ("body not an object", "400", "PayloadEmpty"),
        ("body not json", "400", "PayloadEmpty"),
    ],
)
async def test_raw_requests_are_rejected_as_apple_does(
    fake: FakeApns, apns_key: tuple[str, bytes], case: str, status: str, reason: str
) -> None:
    key = apns_key[0]
    method, path, body = "POST", f"/3/device/{TOKEN}", json.dumps(ALERT).encode()
    headers = {"authorization": f"bearer {_provider_token(key)}", "apns-topic": TOPIC}
    apns_id = str(uuid.uuid4())
    headers["apns-id"] = apns_id
    match case:
        case "get":
            method, body = "GET", b""
        case "other path":
            path = f"/2/device/{TOKEN}"
        case "no token in path":
            path = "/3/device/"
        case "no authorization":
            del headers["authorization"]
        case "old provider token":
            headers["authorization"] = f"bearer {_provider_token(key, age_s=3601)}"
        case "future provider token":
            headers["authorization"] = f"bearer {_provider_token(key, age_s=-600)}"
        case "other key id":
            headers["authorization"] = f"bearer {_provider_token(key, kid='OTHERKEYID')}"
        case "other team":
            headers["authorization"] = f"bearer {_provider_token(key, iss='OTHERTEAM1')}"
        case "not a jwt":
            headers["authorization"] = "bearer not.a.jwt"
        case "no topic":
            del headers["apns-topic"]
        case "unknown push type":
            headers["apns-push-type"] = "banner"
        case "expiration not a number":
            headers["apns-expiration"] = "soon"
        case "empty body":
            body = b""
        case "body not an object":
            body = b"[1, 2]"
        case "body not json":
            body = b"{aps"

    response, answer = await _raw(fake, method, path, headers, body)

    assert response[":status"] == status
    assert response["apns-id"] == apns_id
    assert response["content-type"] == "application/json"
    assert answer == {"reason": reason}
    assert fake.received == []


async def test_a_request_without_apns_id_gets_one(
    fake: FakeApns, apns_key: tuple[str, bytes]
) -> None:
    headers = {
        "authorization": f"bearer {_provider_token(apns_key[0])}",
        "apns-topic": TOPIC,
        "apns-push-type": "background",
        "apns-priority": "5",
    }
    body = json.dumps({"aps": {"content-available": 1}}).encode()

    response, answer = await _raw(fake, "POST", f"/3/device/{TOKEN}", headers, body)

    assert response[":status"] == "200" and answer is None
    assert uuid.UUID(response["apns-id"]) and uuid.UUID(response["apns-unique-id"])
    [received] = fake.received
    assert (received.apns_id, received.push_type, received.priority) == (
        response["apns-id"],
        "background",
        "5",
    )
    assert received.expiration is None and received.collapse_id is None


async def test_an_error_body_waits_for_the_clients_flow_control_window(
    fake: FakeApns, apns_key: tuple[str, bytes]
) -> None:
    # aioapns never hands back window for the bodies it reads, so on one connection its
    # error answers stop after 64 KiB until its 10 s idle timer closes the connection.
    headers = {"authorization": f"bearer {_provider_token(apns_key[0])}", "apns-topic": TOPIC}
    body = json.dumps(ALERT).encode()
    async with _Bare.connect(fake, window=8) as bare:
        stream_id = bare.send("POST", f"/3/device/{DEAD}", headers, body)
        held = await bare.events(0.2)
        bare.open_window(stream_id, 1000)
        rest = await bare.events(5)

    assert [type(e) for e in held if isinstance(e, ResponseReceived | DataReceived)] == [
        ResponseReceived
    ]
    response, answer = _answer(held + rest)
    assert response[":status"] == "410"
    assert answer is not None and answer["reason"] == "Unregistered"


async def test_a_client_offering_no_alpn_is_served_as_apple_does(
    fake: FakeApns, apns_key: tuple[str, bytes]
) -> None:
    # aioapns's own default context offers no ALPN; Apple speaks HTTP/2 to it all the same.
    apns = aioapns.APNs(
        key=apns_key[0],
        key_id=KEY_ID,
        team_id=TEAM_ID,
        topic=TOPIC,
        use_sandbox=True,
        ssl_context=ssl.create_default_context(cafile=fake.ca_file),
    )
    point_at(apns, fake.host, fake.port)
    try:
        assert (await _send(apns, _request())).is_successful
    finally:
        await close_client(apns)


def test_stop_leaves_no_thread_and_no_files(apns_key: tuple[str, bytes]) -> None:
    before = set(threading.enumerate())
    fake = FakeApns(team_id=TEAM_ID, key_id=KEY_ID, public_key_pem=apns_key[1], topics={TOPIC})
    with fake:
        assert Path(fake.ca_file).is_file()
        assert set(threading.enumerate()) != before

    assert set(threading.enumerate()) == before
    assert not Path(fake.ca_file).exists()
