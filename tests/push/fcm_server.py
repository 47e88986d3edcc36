"""A fake Firebase Cloud Messaging on 127.0.0.1 for tests: the FCM HTTP v1 send API and Google's
OAuth 2.0 token endpoint for service accounts, so the real `pyfcm` and `google-auth` talk to it.

    with FakeFcm() as fake:
        fcm = pyfcm_client(fake)                       # real pyfcm + real service-account creds
        fcm.notify(fcm_token=TOKEN, notification_title="Hi")
        assert fake.count(TOKEN) == 1

It is in charge of speaking both protocols the way Google does (answers and error bodies as Google
sends them) and of the faults tests need: tokens that are unregistered (`dead_tokens`), the next
sends failing with 429/500/503 (`fail_next`), slow answers (`response_delay_s`) and the whole
service being down (`set_down`: connection refused, then up again on the same port).
`expire_tokens()` makes Google's 401 ACCESS_TOKEN_EXPIRED answer, on which pyfcm gets a new token.

`service_account_info()` is a service-account JSON whose `token_uri` is this fake's `/token`; the
private key is fresh per fake. google-auth signs its JWT with it, and `/token` checks the signature
with the public half, the issuer, audience, scope and lifetime before issuing an access token.

`pyfcm_client(fake)` points pyfcm at the fake (by default without pyfcm's own retries and
Retry-After sleeps); pyfcm keeps a requests session per thread, which `close_session` closes.

The HTTP server is a small asyncio protocol on httptools (HTTP/1.1 with keep-alive) in one
background thread: it was measured faster than uvicorn and than the standard library's threading
server, and it can drop every connection at once when the fake goes down.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httptools
import jwt
import orjson
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2 import service_account
from pyfcm import FCMNotification
from requests.adapters import HTTPAdapter

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"  # FCM accepts it too
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth puts Google's own token URI in `aud` whatever `token_uri` says, and Google accepts
# its older endpoints as audiences too: all of them, and the fake's own URI, are accepted.
GOOGLE_TOKEN_AUDIENCES = (
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
)
ACCESS_TOKEN_LIFETIME_S = 3600
MAX_ASSERTION_LIFETIME_S = 3600  # Google refuses assertions living longer than an hour
CLOCK_SKEW_S = 300
MAX_MESSAGE_BYTES = 4096
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
JWT_TIMEFRAME_MESSAGE = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)
REGISTRATION_TOKEN = re.compile(r"[A-Za-z0-9_:\-]{20,4096}")
DURATION = re.compile(r"\d+(\.\d{1,9})?s")
SEND_PATH = re.compile(r"/v1/projects/([^/]+)/messages:send")

# Field names a Message (and the request around it) may carry, in proto JSON's two spellings.
REQUEST_FIELDS = {"message", "validate_only", "validateOnly"}
MESSAGE_FIELDS = {
    "name", "data", "notification", "android", "webpush", "apns", "fcm_options", "fcmOptions",
    "token", "topic", "condition",
}  # fmt: skip
NOTIFICATION_FIELDS = {"title", "body", "image"}
ANDROID_FIELDS = {
    "collapse_key", "collapseKey", "priority", "ttl", "restricted_package_name",
    "restrictedPackageName", "data", "notification", "fcm_options", "fcmOptions", "direct_boot_ok",
    "directBootOk", "bandwidth_constrained_ok", "bandwidthConstrainedOk",
    "restricted_satellite_ok", "restrictedSatelliteOk",
}  # fmt: skip
APNS_FIELDS = {"headers", "payload", "fcm_options", "fcmOptions", "live_activity_token",
               "liveActivityToken"}  # fmt: skip
WEBPUSH_FIELDS = {"headers", "data", "notification", "fcm_options", "fcmOptions"}

# fail_next status -> (google.rpc status, FcmError errorCode, message)
INJECTED_FAILURES: dict[int, tuple[str, str, str]] = {
    429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for sending messages."),
    500: ("INTERNAL", "INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
}
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip

Json = dict[str, Any]


# -- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One HTTP answer; `delayed` ones (messages:send) wait `response_delay_s` before going out."""

    status: int
    body: Json
    headers: tuple[tuple[str, str], ...] = ()
    delayed: bool = False

    def encode(self, *, keep_alive: bool) -> bytes:
        payload = orjson.dumps(self.body)
        lines = [
            f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Error')}",
            "Content-Type: application/json; charset=UTF-8",
            f"Content-Length: {len(payload)}",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        if not keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class Rejected(Exception):
    """Raised while checking a request: `reply` is the error answer Google would give."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def google_error(
    code: int, status: str, message: str, details: list[Json] | None = None
) -> Rejected:
    """The google.rpc.Status error body every Google JSON API answers with."""
    error: Json = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return Rejected(Reply(code, {"error": error}))


def fcm_error(code: int, status: str, error_code: str, message: str) -> Rejected:
    return google_error(code, status, message, [{"@type": FCM_ERROR, "errorCode": error_code}])


def invalid_argument(
    message: str, field_name: str | None, description: str | None = None
) -> Rejected:
    """400 INVALID_ARGUMENT with the FcmError and BadRequest details FCM attaches."""
    violation = {"description": description or message}
    if field_name is not None:
        violation = {"field": field_name, **violation}
    details: list[Json] = [
        {"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"},
        {"@type": BAD_REQUEST, "fieldViolations": [violation]},
    ]
    return google_error(400, "INVALID_ARGUMENT", message, details)


def oauth_error(error: str, description: str) -> Rejected:
    return Rejected(Reply(400, {"error": error, "error_description": description}))


def unauthenticated(*, expired: bool = False) -> Rejected:
    # pyfcm re-fetches a token (and retries) only for the ACCESS_TOKEN_EXPIRED reason.
    details = None
    if expired:
        metadata = {"service": "fcm.googleapis.com",
                    "method": "google.firebase.fcm.v1.FcmService.SendMessage"}  # fmt: skip
        details = [{"@type": ERROR_INFO, "reason": "ACCESS_TOKEN_EXPIRED",
                    "domain": "googleapis.com", "metadata": metadata}]  # fmt: skip
    return google_error(401, "UNAUTHENTICATED", UNAUTHENTICATED_MESSAGE, details)


# -- checking a message (FCM's field names and messages) -----------------------------------------


def check_send_request(body: bytes) -> tuple[Json, bool]:
    """The message and validate_only of a messages:send body, or Rejected as FCM would."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid_argument("Invalid JSON payload received. " + str(exc), None) from None
    if not isinstance(request, dict):
        raise invalid_argument("Invalid JSON payload received. Expected an object.", None)
    check_known_fields(request, REQUEST_FIELDS, "")
    message = request.get("message", {})
    expect_object(message, "message")
    validate_only = request.get("validate_only", request.get("validateOnly", False))
    if not isinstance(validate_only, bool):
        raise bad_value("validate_only", "TYPE_BOOL", validate_only)
    check_message(message)
    # The compact encoding is never longer than the body around it: encode only large bodies.
    if len(body) > MAX_MESSAGE_BYTES and len(orjson.dumps(message)) > MAX_MESSAGE_BYTES:
        raise invalid_argument("Message is too big", "message")
    return message, validate_only


def check_message(message: Json) -> None:
    check_known_fields(message, MESSAGE_FIELDS, "message")
    check_target(message)
    check_string_map(message, "data", "message")
    check_notification(message.get("notification"), "message.notification")
    check_android(message.get("android"))
    check_section(message.get("apns"), APNS_FIELDS, "message.apns")
    check_section(message.get("webpush"), WEBPUSH_FIELDS, "message.webpush")


def check_target(message: Json) -> None:
    targets = [name for name in ("token", "topic", "condition") if name in message]
    if not targets:
        raise invalid_argument("Recipient of the message is not set.", "message")
    if len(targets) > 1:
        text = (f"Invalid value at 'message' (oneof), oneof field 'target' is already set. "
                f"Cannot set '{targets[1]}'")  # fmt: skip
        raise invalid_argument(text, "message")
    value = message[targets[0]]
    if not isinstance(value, str):
        raise bad_value(f"message.{targets[0]}", "TYPE_STRING", value)
    if targets[0] == "token" and not REGISTRATION_TOKEN.fullmatch(value):
        raise invalid_argument(
            "The registration token is not a valid FCM registration token",
            "message.token",
            "Invalid registration token",
        )
    if not value:
        raise invalid_argument("Recipient of the message is not set.", "message")


def check_notification(notification: Any, path: str) -> None:
    if notification is None:
        return
    expect_object(notification, path)
    check_known_fields(notification, NOTIFICATION_FIELDS, path)
    for name in NOTIFICATION_FIELDS & notification.keys():
        if not isinstance(notification[name], str):
            raise bad_value(f"{path}.{name}", "TYPE_STRING", notification[name])


def check_android(android: Any) -> None:
    if android is None:
        return
    expect_object(android, "message.android")
    check_known_fields(android, ANDROID_FIELDS, "message.android")
    priority = android.get("priority")
    if priority is not None and priority not in ("NORMAL", "HIGH"):
        enum = "type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority"
        raise bad_value("message.android.priority", enum, priority)
    ttl = android.get("ttl")
    if ttl is not None and not (isinstance(ttl, str) and DURATION.fullmatch(ttl)):
        raise bad_value("message.android.ttl", "type.googleapis.com/google.protobuf.Duration", ttl)
    check_string_map(android, "data", "message.android")


def check_section(section: Any, fields: set[str], path: str) -> None:
    if section is not None:
        expect_object(section, path)
        check_known_fields(section, fields, path)


def check_string_map(parent: Json, name: str, path: str) -> None:
    """FCM's map<string, string> fields (data): every value must be a JSON string."""
    values = parent.get(name)
    if values is None:
        return
    expect_object(values, f"{path}.{name}")
    for index, value in enumerate(values.values()):
        if not isinstance(value, str):
            raise bad_value(f"{path}.{name}[{index}].value", "TYPE_STRING", value)


def check_known_fields(obj: Json, known: set[str], path: str) -> None:
    for name in obj:
        if name not in known:
            text = f'Invalid JSON payload received. Unknown name "{name}"'
            text += f" at '{path}'" if path else ""
            raise invalid_argument(text + ": Cannot find field.", path or None)


def expect_object(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise bad_value(path, "type.googleapis.com/google.protobuf.Struct", value)


def bad_value(path: str, type_name: str, value: Any) -> Rejected:
    text = f"Invalid value at '{path}' ({type_name}), {orjson.dumps(value).decode()}"
    return invalid_argument(text, path)


# -- the service ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    """One send that fail_next armed to fail."""

    status: int
    retry_after: int | None


@dataclass
class _Grant:
    expires_at: float
    expired: bool = False


@dataclass
class _Account:
    """The one service account this fake knows (a fresh key per fake)."""

    project_id: str
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    key_id: str = field(default_factory=lambda: secrets.token_hex(20))
    client_id: str = field(default_factory=lambda: str(10**20 + secrets.randbelow(9 * 10**20)))

    @property
    def email(self) -> str:
        return f"firebase-adminsdk-fake@{self.project_id}.iam.gserviceaccount.com"


class FakeFcm:
    """Start with `with FakeFcm() as fake:`; see the module docstring."""

    def __init__(self, *, project_id: str = "demo-project") -> None:
        self.project_id = project_id
        self._account = _Account(project_id)
        self._public_key = self._account.key.public_key()
        self._http = _HttpServer(self.handle)  # bound now: the port is known and kept
        self._http.delay = lambda: self.response_delay_s
        self.url = f"http://127.0.0.1:{self._http.port}"
        self.endpoint_base = self.url + "/v1/projects"
        self.token_uri = self.url + "/token"
        self.received: list[Json] = []
        self.dead_tokens: set[str] = set()
        self.response_delay_s = 0.0
        self.tokens_issued = 0
        self._lock = threading.Lock()
        self._grants: dict[str, _Grant] = {}
        self._deliveries: collections.Counter[str] = collections.Counter()
        self._failures: collections.deque[_Failure] = collections.deque()
        self._message_ids = itertools.count(1)

    # -- control, from tests ---------------------------------------------------------------------

    def start(self) -> FakeFcm:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> FakeFcm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def service_account_info(self) -> Json:
        """A service-account key file's JSON, pointing google-auth at this fake's /token."""
        account = self._account
        pem = account.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": account.key_id,
            "private_key": pem.decode(),
            "client_email": account.email,
            "client_id": account.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
            + quote(account.email),
            "universe_domain": "googleapis.com",
        }

    def fail_next(self, n: int, status: int = 503, retry_after: int | None = None) -> None:
        """The next `n` sends (authenticated, to this project) answer `status` (429, 500, 503),
        after any failures armed before."""
        if status not in INJECTED_FAILURES:
            raise ValueError(f"fail_next supports {sorted(INJECTED_FAILURES)}, not {status}")
        with self._lock:
            self._failures.extend([_Failure(status, retry_after)] * n)

    def set_down(self, down: bool) -> None:
        """Down: no listening socket and every connection dropped. Up: listening on the same port."""
        self._http.set_listening(not down)

    def expire_tokens(self) -> None:
        """Every access token issued so far now gets 401 ACCESS_TOKEN_EXPIRED."""
        with self._lock:
            for grant in self._grants.values():
                grant.expired = True

    def count(self, token: str) -> int:
        with self._lock:
            return self._deliveries[token]

    # -- serving, on the server's thread ---------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        path = unquote(urlsplit(target).path)
        try:
            if path == "/token":
                return self._token(method, body)
            if match := SEND_PATH.fullmatch(path):
                return replace(self._send(method, match.group(1), headers, body), delayed=True)
            raise google_error(404, "NOT_FOUND", f"The requested URL {path} was not found.")
        except Rejected as rejected:
            return rejected.reply

    def _token(self, method: str, body: bytes) -> Reply:
        if method != "POST":
            raise oauth_error("invalid_request", f"Invalid request method: {method}")
        form = parse_qs(body.decode("utf-8", "replace"))
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != JWT_BEARER:
            raise oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = form.get("assertion", [""])[0]
        if not assertion:
            raise oauth_error("invalid_request", "Missing required parameter: assertion")
        self._verify_assertion(assertion)
        access_token = "ya29.c." + secrets.token_urlsafe(48)
        with self._lock:
            self._grants[access_token] = _Grant(time.time() + ACCESS_TOKEN_LIFETIME_S)
            self.tokens_issued += 1
        answer = {"access_token": access_token, "expires_in": ACCESS_TOKEN_LIFETIME_S,
                  "token_type": "Bearer"}  # fmt: skip
        return Reply(200, answer)

    def _verify_assertion(self, assertion: str) -> None:
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise oauth_error("invalid_grant", "Bad Request") from None
        if unverified.get("iss") != self._account.email:
            raise oauth_error("invalid_grant", "Invalid grant: account not found")
        try:
            claims = jwt.decode(
                assertion,
                self._public_key,
                algorithms=["RS256"],
                audience=[self.token_uri, *GOOGLE_TOKEN_AUDIENCES],
                issuer=self._account.email,
                leeway=CLOCK_SKEW_S,
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except jwt.InvalidSignatureError:
            raise oauth_error("invalid_grant", "Invalid JWT Signature.") from None
        except jwt.InvalidAudienceError:
            text = f"Invalid JWT: Failed audience check. The right audience is {self.token_uri}"
            raise oauth_error("invalid_grant", text) from None
        except jwt.PyJWTError:  # expired, issued in the future, a claim missing
            raise oauth_error("invalid_grant", JWT_TIMEFRAME_MESSAGE) from None
        if not 0 < claims["exp"] - claims["iat"] <= MAX_ASSERTION_LIFETIME_S:
            raise oauth_error("invalid_grant", JWT_TIMEFRAME_MESSAGE)
        scopes = str(claims.get("scope", "")).split()
        if FCM_SCOPE not in scopes and CLOUD_PLATFORM_SCOPE not in scopes:
            # Google's answer when the assertion names no scope an access token can carry.
            raise oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")

    def _send(self, method: str, project_id: str, headers: Mapping[str, str], body: bytes) -> Reply:
        try:
            return self._deliver(method, project_id, headers, body)
        except Rejected as rejected:  # errors from messages:send wait response_delay_s too
            return rejected.reply

    def _deliver(
        self, method: str, project_id: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        if method != "POST":
            raise google_error(405, "METHOD_NOT_ALLOWED", f"Method {method} is not allowed.")
        self._authenticate(headers.get("authorization", ""))
        if project_id != self.project_id:
            raise fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch")
        self._maybe_fail()
        message, validate_only = check_send_request(body)
        token = message.get("token")
        if token in self.dead_tokens:
            raise fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
        if validate_only:  # Google's own answer to a dry run
            return Reply(200, {"name": f"projects/{project_id}/messages/fake_message_id"})
        with self._lock:
            self.received.append(message)
            if token is not None:
                self._deliveries[token] += 1
            number = next(self._message_ids)
        # Shaped like Google's: "0:<microseconds>%<hex>" (plus a counter, to be unique).
        message_id = f"0:{time.time_ns() // 1000}{number}%{self._account.key_id[:16]}"
        return Reply(200, {"name": f"projects/{project_id}/messages/{message_id}"})

    def _authenticate(self, authorization: str) -> None:
        scheme, _, access_token = authorization.partition(" ")
        with self._lock:
            grant = self._grants.get(access_token.strip()) if scheme.lower() == "bearer" else None
        if grant is None:
            raise unauthenticated()
        if grant.expired or grant.expires_at < time.time():
            raise unauthenticated(expired=True)

    def _maybe_fail(self) -> None:
        with self._lock:
            if not self._failures:
                return
            failure = self._failures.popleft()
        status, error_code, text = INJECTED_FAILURES[failure.status]
        rejected = fcm_error(failure.status, status, error_code, text)
        if failure.retry_after is not None:
            retry_after = (("Retry-After", str(failure.retry_after)),)
            rejected = Rejected(replace(rejected.reply, headers=retry_after))
        raise rejected


# -- HTTP/1.1 on asyncio + httptools, in a thread ------------------------------------------------

Handler = Callable[[str, str, Mapping[str, str], bytes], Reply]


class _Connection(asyncio.Protocol):
    """One keep-alive connection. Answers leave in request order, each when its delay is over."""

    def __init__(self, server: _HttpServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None]  # done once the connection is closed
        self._pending: collections.deque[tuple[float, bytes, bool]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.lost = asyncio.get_running_loop().create_future()
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self.lost.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
        self._pending.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._queue(Reply(400, {"error": "bad request"}).encode(keep_alive=False), 0.0, False)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method().decode("latin-1")
        reply = self._server.handler(method, self._url.decode("latin-1"), self._headers,
                                     b"".join(self._body))  # fmt: skip
        keep_alive = self._parser.should_keep_alive()
        delay = self._server.delay() if reply.delayed else 0.0
        self._queue(reply.encode(keep_alive=keep_alive), delay, keep_alive)

    # writing
    def _queue(self, data: bytes, delay: float, keep_alive: bool) -> None:
        loop = asyncio.get_running_loop()
        self._pending.append((loop.time() + delay, data, keep_alive))
        if len(self._pending) == 1:
            self._flush()

    def _flush(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        while self._pending and self._transport is not None:
            if self._transport.is_closing():
                self._pending.clear()
                return
            due, data, keep_alive = self._pending[0]
            if due > loop.time():
                self._timer = loop.call_at(due, self._flush)
                return
            self._pending.popleft()
            self._transport.write(data)
            if not keep_alive:
                self._transport.close()
                self._pending.clear()


class _HttpServer:
    """An event loop in a daemon thread serving one port, which it can stop and resume listening on."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.delay: Callable[[], float] = lambda: 0.0
        self.connections: set[_Connection] = set()
        self._socket: socket.socket | None = _bind(0)
        self.port: int = self._socket.getsockname()[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-fcm", daemon=True)
        self._thread.start()
        self._call(self._listen())

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            self._close_socket()
            return
        self._call(self._unlisten())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()
        self._loop = self._thread = None

    def set_listening(self, listening: bool) -> None:
        if listening and self._server is None:
            self._socket = _bind(self.port)
            self._call(self._listen())
        elif not listening and self._server is not None:
            self._call(self._unlisten())

    def _call(self, coroutine: Any) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        sock, self._socket = self._socket, None
        assert sock is not None
        self._server = await loop.create_server(lambda: _Connection(self), sock=sock, backlog=1024)

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()  # closes the listening socket: new connections are refused
            self._server = None
        for connection in list(self.connections):
            connection.close()
        # Wait for connection_lost: then the sockets are closed and clients see it when we return.
        await asyncio.gather(*[connection.lost for connection in self.connections])

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Going down closes connections from this side (TIME_WAIT here): rebinding needs REUSEADDR.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


# -- pointing the real pyfcm at the fake ---------------------------------------------------------


class RawFCMNotification(FCMNotification):  # type: ignore[misc]
    """pyfcm that POSTs once and hands back the answer: no sleeping for Retry-After and no retry
    on 401 (FCMNotification.send_request does both, Retry-After uncapped), for tests of errors."""

    def send_request(self, payload: Any = None, timeout: Any = None) -> requests.Response:
        session: requests.Session = self.requests_session
        return session.post(self.fcm_end_point, data=payload, timeout=timeout)


def credentials_for(info: Json) -> service_account.Credentials:
    """google-auth's credentials for a service-account JSON, scoped for FCM."""
    # Loading the RSA key is what is slow (~50 ms: cryptography checks the key): load each key
    # file once, and hand out copies sharing its signer but none of its token state.
    loaded = _loaded_credentials(orjson.dumps(info, option=orjson.OPT_SORT_KEYS))
    return cast(service_account.Credentials, loaded.with_scopes([FCM_SCOPE]))


@functools.lru_cache(maxsize=16)
def _loaded_credentials(info_json: bytes) -> service_account.Credentials:
    loaded = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        orjson.loads(info_json), scopes=[FCM_SCOPE]
    )
    return cast(service_account.Credentials, loaded)


def pyfcm_client(fake: FakeFcm, *, info: Json | None = None, raw: bool = True) -> FCMNotification:
    """The real pyfcm sending to `fake` with real service-account credentials (`info`, default the
    fake's own). `raw` (RawFCMNotification, no retries anywhere) suits tests of error answers;
    raw=False is pyfcm untouched, retries and Retry-After sleeps included.

    pyfcm keeps one requests session per thread: call `close_session(fcm)` in each thread that
    sent, or its sockets are left for the garbage collector (a ResourceWarning)."""
    creds = credentials_for(info if info is not None else fake.service_account_info())
    fcm: FCMNotification
    if raw:
        # One adapter object is shared by every thread's session: size its pool for many threads.
        adapter = HTTPAdapter(max_retries=0, pool_maxsize=64)
        fcm = RawFCMNotification(credentials=creds, adapter=adapter)
    else:
        fcm = FCMNotification(credentials=creds)
    # The endpoint is built from this class attribute; an instance attribute shadows it.
    fcm.FCM_END_POINT_BASE = fake.endpoint_base
    return fcm


def close_session(fcm: FCMNotification) -> None:
    """Close the calling thread's pyfcm session (and its keep-alive connections), if it has one."""
    session = getattr(fcm.thread_local, "requests_session", None)
    if session is not None:
        session.close()
        fcm.thread_local.requests_session = None


def with_other_key(info: Json) -> Json:
    """`info` with a private key of its own: what a rotated or wrong key file looks like."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {**info, "private_key": pem.decode()}
