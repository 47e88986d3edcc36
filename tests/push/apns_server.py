"""A local APNs for the push tests: Apple's provider API (HTTP/2 over TLS, token-based auth) on
127.0.0.1, answering `POST /3/device/<token>` the way Apple documents it ("Sending notification
requests to APNs", "Handling notification responses from APNs"), so the real aioapns client can be
tested against it. It runs its own event loop in a background thread of the test process, because
the code under test may be a separate process; it also owns the TLS material clients must trust
and the helpers that point an aioapns client at it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import re
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aioapns
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings

T = TypeVar("T")

HOST = "127.0.0.1"
PATH_PREFIX = "/3/device/"
PUSH_TYPES = frozenset(
    {
        "alert",
        "background",
        "location",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "pushtotalk",
    }
)
PRIORITIES = frozenset({"1", "5", "10"})
MAX_PAYLOAD_BYTES = 4096
MAX_COLLAPSE_ID_BYTES = 64
TOKEN_MAX_AGE_S = 3600
TOKEN_CLOCK_SKEW_S = 60  # an `iat` this far ahead is a clock difference; further is invalid
# Apple's servers have been seen to advertise 500 to 1500 streams per connection; aioapns assumes
# 1000 until it reads our SETTINGS, so fewer (h2's default is 100) would break its first burst.
MAX_CONCURRENT_STREAMS = 1000
MAX_HEADER_LIST_SIZE = 8000  # what Apple's servers advertise
CONTROL_TIMEOUT_S = 10.0
DEFAULT_REASONS = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}

DEVICE_TOKEN = re.compile(r"(?:[0-9A-Fa-f]{2}){32,100}")  # hex, even length, 64..200 chars
APNS_ID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
DIGITS = re.compile(r"[0-9]+")


@dataclass
class ApnsReceived:
    """A notification the fake accepted (answered 200), with the headers it came with."""

    token: str
    topic: str
    push_type: str | None
    priority: str | None
    expiration: str | None
    collapse_id: str | None
    apns_id: str
    payload: dict[str, Any]
    at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))


class _Reject(Exception):
    """An APNs error answer: the HTTP status and the `reason` of the JSON body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass
class _Request:
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class _Reply:
    headers: list[tuple[str, str]]
    body: bytes  # empty: the HEADERS frame ends the stream


def make_apns_key() -> tuple[str, bytes]:
    """A new provider signing key, as Apple issues it: the text of a .p8 file (a PKCS#8 PEM
    P-256 private key for ES256), and the public key PEM the fake verifies tokens with."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


class FakeApns:
    """Apple's APNs provider API on 127.0.0.1:`port` (bound by `start()`), in a thread.

    `received` lists the accepted notifications in order (appended by the server thread; list
    appends are atomic, so tests may read it at any time). Tokens in `dead_tokens` answer 410
    Unregistered; `fail_next` and `set_down` script outages; `response_delay_s` slows every answer
    without holding other streams."""

    def __init__(
        self, *, team_id: str, key_id: str, public_key_pem: bytes, topics: set[str]
    ) -> None:
        self.team_id = team_id
        self.key_id = key_id
        self.topics = set(topics)
        self.host = HOST
        self.port = 0
        self.received: list[ApnsReceived] = []
        self.dead_tokens: set[str] = set()
        self.response_delay_s = 0.0
        self._public_key = serialization.load_pem_public_key(public_key_pem)
        self._dir = Path(tempfile.mkdtemp(prefix="fake-apns-"))
        self.ca_file, self._server_ssl = _tls_files(self._dir)
        self._failures: deque[tuple[int, str]] = deque()
        self._lock = threading.Lock()
        self._verified: dict[str, tuple[str, str, float]] = {}  # token -> kid, iss, iat
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[_ApnsConnection] = set()
        self._stopped = False

    # -- control, from the test's thread ----------------------------------------------------

    def start(self) -> FakeApns:
        if self._thread is not None or self._stopped:
            raise RuntimeError("a FakeApns starts once (stop() deletes its TLS files)")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=_run_loop, args=(loop,), name="fake-apns", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._listen(0))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Say GOAWAY to every client, close everything, end the thread, delete the TLS files."""
        loop, thread = self._loop, self._thread
        try:
            if loop is not None and thread is not None:
                try:
                    self._call(self._go_down(goodbye=True))
                finally:
                    loop.call_soon_threadsafe(loop.stop)
                    thread.join(CONTROL_TIMEOUT_S)
        finally:
            self._loop = self._thread = None
            self._stopped = True
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakeApns:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def fail_next(self, n: int, status: int = 503, reason: str | None = None) -> None:
        """Answer the next `n` authenticated requests with this error (the reason defaults to
        Apple's for the status: 429 TooManyRequests, 500 InternalServerError, 503
        ServiceUnavailable)."""
        if reason is None:
            if status not in DEFAULT_REASONS:
                raise ValueError(f"no default reason for status {status}; pass one")
            reason = DEFAULT_REASONS[status]
        with self._lock:
            self._failures.extend([(status, reason)] * n)

    def set_down(self, down: bool) -> None:
        """An outage: down closes the listening socket and drops open connections (clients see
        connection errors); up listens again on the same port."""
        self._call(self._go_down(goodbye=False) if down else self._come_up())

    def count(self, token: str) -> int:
        """How many notifications to `token` were accepted."""
        return sum(1 for notification in list(self.received) if notification.token == token)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this fake's certificate and offers ALPN h2."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.set_alpn_protocols(["h2"])
        return context

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("FakeApns is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CONTROL_TIMEOUT_S)

    # -- the server's loop ------------------------------------------------------------------

    async def _listen(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ApnsConnection(self),
            self.host,
            port,
            ssl=self._server_ssl,
            reuse_address=True,  # so coming back up can rebind the port a moment later
            backlog=1024,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _come_up(self) -> None:
        if self._server is None:
            await self._listen(self.port)

    async def _go_down(self, *, goodbye: bool) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        connections = list(self._connections)
        for connection in connections:
            connection.drop(goodbye=goodbye)
        if connections:
            await asyncio.wait([c.closed for c in connections], timeout=CONTROL_TIMEOUT_S)

    # -- answering a request (server's loop) ------------------------------------------------

    def answer(self, request: _Request) -> _Reply:
        """The APNs answer to one complete request; an accepted one is recorded."""
        apns_id = request.headers.get("apns-id") or str(uuid.uuid4())
        try:
            self._authenticate(request.headers.get("authorization"))
            self._scripted_failure()
            notification = self._validate(request, apns_id)
        except _Reject as reject:
            return _error_reply(apns_id, reject)
        self.received.append(notification)
        headers = [(":status", "200"), ("apns-id", apns_id), ("apns-unique-id", str(uuid.uuid4()))]
        return _Reply(headers, b"")

    def _scripted_failure(self) -> None:
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            raise _Reject(*failure)

    def _authenticate(self, authorization: str | None) -> None:
        if not authorization:
            raise _Reject(403, "MissingProviderToken")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _Reject(403, "InvalidProviderToken")
        # Clients reuse one token for up to an hour: check its signature once, the rest always
        # (tests may change the key id or team between requests).
        claims = self._verified.get(token)
        if claims is None:
            claims = _signed_claims(token, self._public_key)
            if len(self._verified) > 1024:
                self._verified.clear()
            self._verified[token] = claims
        key_id, team_id, issued_at = claims
        if key_id != self.key_id or team_id != self.team_id:
            raise _Reject(403, "InvalidProviderToken")
        now = time.time()
        if issued_at < now - TOKEN_MAX_AGE_S:
            raise _Reject(403, "ExpiredProviderToken")
        if issued_at > now + TOKEN_CLOCK_SKEW_S:
            raise _Reject(403, "InvalidProviderToken")

    def _validate(self, request: _Request, apns_id: str) -> ApnsReceived:
        headers = request.headers
        token = _device_token(headers.get(":method", ""), headers.get(":path", ""))
        topic = _topic(headers.get("apns-topic"), self.topics)
        push_type = _optional(headers, "apns-push-type", PUSH_TYPES.__contains__, "InvalidPushType")
        priority = _optional(headers, "apns-priority", PRIORITIES.__contains__, "BadPriority")
        expiration = _optional(
            headers,
            "apns-expiration",
            lambda v: DIGITS.fullmatch(v) is not None,
            "BadExpirationDate",
        )
        collapse_id = _optional(
            headers,
            "apns-collapse-id",
            lambda v: len(v.encode()) <= MAX_COLLAPSE_ID_BYTES,
            "BadCollapseId",
        )
        if "apns-id" in headers and APNS_ID.fullmatch(apns_id) is None:
            raise _Reject(400, "BadMessageId")
        if DEVICE_TOKEN.fullmatch(token) is None:
            raise _Reject(400, "BadDeviceToken")
        payload = _payload(bytes(request.body))
        if token in self.dead_tokens:
            raise _Reject(410, "Unregistered")
        return ApnsReceived(
            token, topic, push_type, priority, expiration, collapse_id, apns_id, payload
        )


def _signed_claims(token: str, public_key: Any) -> tuple[str, str, float]:
    """An ES256 provider token's key id, team and issue time, once its signature checks out."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(
            token,
            public_key,
            algorithms=["ES256"],
            options={"verify_iat": False, "require": ["iss", "iat"]},
        )
    except jwt.PyJWTError:
        raise _Reject(403, "InvalidProviderToken") from None
    key_id, team_id, issued_at = header.get("kid"), claims["iss"], claims["iat"]
    if (
        not isinstance(key_id, str)
        or not isinstance(team_id, str)
        or isinstance(issued_at, bool)
        or not isinstance(issued_at, int | float)
    ):
        raise _Reject(403, "InvalidProviderToken")
    return key_id, team_id, float(issued_at)


def _device_token(method: str, path: str) -> str:
    if not path.startswith(PATH_PREFIX):
        raise _Reject(404, "BadPath")
    if method != "POST":
        raise _Reject(405, "MethodNotAllowed")
    token = path.removeprefix(PATH_PREFIX)
    if not token:
        raise _Reject(400, "MissingDeviceToken")
    return token


def _topic(topic: str | None, allowed: set[str]) -> str:
    if not topic:
        raise _Reject(400, "MissingTopic")
    if topic not in allowed:
        raise _Reject(400, "TopicDisallowed")
    return topic


def _optional(headers: dict[str, str], name: str, valid: Any, reason: str) -> str | None:
    """An optional header's value, rejected with `reason` when present and not `valid`."""
    value = headers.get(name)
    if value is not None and not valid(value):
        raise _Reject(400, reason)
    return value


def _payload(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_PAYLOAD_BYTES:
        raise _Reject(413, "PayloadTooLarge")
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
        raise _Reject(400, "PayloadEmpty")
    return payload


def _error_reply(apns_id: str, reject: _Reject) -> _Reply:
    body: dict[str, Any] = {"reason": reject.reason}
    if reject.status == 410:
        body["timestamp"] = int(time.time() * 1000)  # when the token was found invalid, in ms
    headers = [
        (":status", str(reject.status)),
        ("apns-id", apns_id),
        ("content-type", "application/json"),
    ]
    return _Reply(headers, json.dumps(body, separators=(",", ":")).encode())


class _ApnsConnection(asyncio.Protocol):
    """One client's HTTP/2 connection: collects each stream's request and answers it on its own
    (a delayed answer is a timer, so it holds no other stream)."""

    def __init__(self, fake: FakeApns) -> None:
        self._fake = fake
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._conn = H2Connection(
            config=H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self._conn.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
            },
        )
        self._transport: asyncio.Transport | None = None
        self._requests: dict[int, _Request] = {}
        self._unsent: dict[int, bytes] = {}  # error bodies waiting for the client's window
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        # aioapns's default context offers no ALPN and Apple serves it all the same: only a
        # client that negotiated something other than h2 is turned away.
        if ssl_object is not None and ssl_object.selected_alpn_protocol() not in (None, "h2"):
            transport.close()
            return
        self._fake._connections.add(self)
        self._conn.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._fake._connections.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            events = self._conn.receive_data(data)
        except ProtocolError:
            self._flush()  # h2 has queued a GOAWAY saying why
            if self._transport is not None:
                self._transport.close()
            return
        for event in events:
            self._on_event(event)
        self._flush()

    def drop(self, *, goodbye: bool) -> None:
        """Close at once: with a GOAWAY first (a shutdown), or without (an outage)."""
        if self._transport is None:
            return
        if goodbye:
            with contextlib.suppress(ProtocolError):
                self._conn.close_connection()
            self._flush()
        self._transport.abort()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self._requests[event.stream_id] = _Request(dict(event.headers))  # type: ignore[arg-type]
        elif isinstance(event, DataReceived):
            request = self._requests.get(event.stream_id)
            if request is not None:
                request.body += event.data
            self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, StreamEnded):
            request = self._requests.pop(event.stream_id, None)
            if request is not None:
                self._schedule(event.stream_id, request)
        elif isinstance(event, StreamReset):
            self._forget(event.stream_id)
        elif isinstance(event, WindowUpdated):
            self._send_unsent()
        elif isinstance(event, ConnectionTerminated) and self._transport is not None:
            self._transport.close()

    def _schedule(self, stream_id: int, request: _Request) -> None:
        delay = self._fake.response_delay_s
        if delay <= 0:
            self._respond(stream_id, request)
        else:
            self._timers[stream_id] = self._loop.call_later(
                delay, self._respond_later, stream_id, request
            )

    def _respond_later(self, stream_id: int, request: _Request) -> None:
        self._timers.pop(stream_id, None)
        self._respond(stream_id, request)
        self._flush()

    def _respond(self, stream_id: int, request: _Request) -> None:
        reply = self._fake.answer(request)
        try:
            self._conn.send_headers(stream_id, reply.headers, end_stream=not reply.body)
        except ProtocolError:  # the client reset the stream or is closing the connection
            return
        if reply.body:
            self._unsent[stream_id] = reply.body
            self._send_unsent()

    def _send_unsent(self) -> None:
        """Send the error bodies the client's flow-control windows have room for."""
        for stream_id, body in list(self._unsent.items()):
            try:
                if self._conn.local_flow_control_window(stream_id) < len(body):
                    continue
                del self._unsent[stream_id]
                self._conn.send_data(stream_id, body, end_stream=True)
            except ProtocolError:
                self._unsent.pop(stream_id, None)

    def _forget(self, stream_id: int) -> None:
        self._requests.pop(stream_id, None)
        self._unsent.pop(stream_id, None)
        timer = self._timers.pop(stream_id, None)
        if timer is not None:
            timer.cancel()

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


# -- TLS ------------------------------------------------------------------------------------


def _tls_files(directory: Path) -> tuple[str, ssl.SSLContext]:
    """Write a CA and a server certificate for 127.0.0.1 and localhost signed by it; return the
    CA file clients must trust and the server's TLS context (TLS 1.2+, ALPN h2).

    A CA plus a leaf rather than one self-signed certificate: it passes OpenSSL's strict
    verification too (Python 3.13 turns it on by default)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fake APNs test CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    alt_names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
    server_cert = (
        _builder(server_name, ca_name, server_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server-key.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["h2"])
    return str(ca_file), context


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


# -- pointing aioapns at the fake -------------------------------------------------------------


def point_at(client: aioapns.APNs, host: str, port: int) -> None:
    """Make `client` connect to host:port instead of Apple's servers. aioapns reads both from
    class attributes of its pool's protocol class (APNS_SERVER, APNS_PORT), so a subclass
    overriding them does it; the requests' `host` header then says `host` too."""
    pool = client.pool
    pool.protocol_class = type(
        "LocalApns", (pool.protocol_class,), {"APNS_SERVER": host, "APNS_PORT": port}
    )


def local_client(
    fake: FakeApns,
    *,
    key: str,
    topic: str,
    key_id: str | None = None,
    team_id: str | None = None,
    **options: Any,
) -> aioapns.APNs:
    """A real aioapns client, token-authenticated, talking to `fake`. Call it inside a running
    event loop (aioapns binds itself to the current loop); close it with `close_client`."""
    client = aioapns.APNs(
        key=key,
        key_id=key_id or fake.key_id,
        team_id=team_id or fake.team_id,
        topic=topic,
        use_sandbox=True,
        ssl_context=fake.ssl_context(),
        **options,
    )
    point_at(client, fake.host, fake.port)
    return client


async def close_client(client: aioapns.APNs, timeout_s: float = 5.0) -> None:
    """Close the client's connections and wait until they are gone (aioapns's own close only
    starts the TLS shutdown, and a transport still open when the loop ends is a
    ResourceWarning)."""
    pool = client.pool
    pool.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            # aioapns offers nothing to await: its connections leave the pool as they close.
            while pool.connections:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    for connection in list(pool.connections):  # a peer that never finished the TLS shutdown
        if connection.transport is not None:
            connection.transport.abort()
    await asyncio.sleep(0)
