"""FCM HTTP v1 through `pyfcm`, with the app's service account (OAuth 2.0 JWT-bearer grant).

Every request goes through the guarded outbound client (`baas.net`): pyfcm's sessions get its
`requests` adapter (redirects off), and the OAuth token is fetched by this module with the
client itself, not by google-auth (whose transport follows redirects and puts the endpoint's
answer in its exceptions). The service account's `token_uri` is an admin's setting, so it is
judged like any URL the server fetches, and nothing the far side says is kept: a delivery's
reason is our own text, an FCM error code or an OAuth error code, never a body.

pyfcm is synchronous and, left alone, sleeps for any Retry-After and retries 5xx itself; here it
runs in a bounded thread pool, without its retries, with a timeout per request, and its answers
become Outcomes so the queue does the retrying, honouring Retry-After. `BAAS_FCM_URL` replaces
Google's endpoint (a proxy or a local FCM for tests).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import google.auth.jwt
import orjson
import requests
from google.oauth2 import service_account
from pyfcm import FCMNotification
from pyfcm.errors import FCMError

from baas.net import Limits, OutboundClient, OutboundError, guard_session
from baas.net.adapter import GuardedAdapter
from baas.push.apps import GOOGLE_TOKEN_URI, PushApp
from baas.push.notification import Notification
from baas.push.provider import Device, Outcome

log = logging.getLogger("baas.push")
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# FCM's error codes (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode) meaning the token
# will never work: the app was uninstalled, or the token belongs to another project.
DEAD_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
ASSERTION_LIFETIME_S = 3600
TOKEN_MARGIN_S = 60  # a token this close to its end is renewed first
MAX_TOKEN_ANSWER_BYTES = 64 * 1024
MAX_ACCESS_TOKEN_CHARS = 4096
# What of an answer may be kept: codes as Google writes them (UNREGISTERED, invalid_grant) and
# FCM's message names (projects/p/messages/0:1500415314455276%31bd1c9631bd1c96).
_ERROR_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_MESSAGE_NAME = re.compile(r"projects/[A-Za-z0-9_.:-]{1,100}/messages/[A-Za-z0-9_.:%-]{1,200}")


class TokenUnavailable(Exception):
    """No OAuth access token; the message is ours."""


class _AccessToken:
    """The service account's access token, shared by every sending thread while it is valid:
    a JWT signed with the account's key, exchanged at its `token_uri` through the guarded client
    (one POST, no redirects, within the send timeout). For as long as a send may take after a
    failure, the sends waiting for a token fail at once rather than in turn."""

    def __init__(
        self,
        credentials: service_account.Credentials,
        token_uri: str,
        outbound: OutboundClient,
        timeout_s: float,
    ) -> None:
        self._credentials, self._token_uri, self._outbound = credentials, token_uri, outbound
        self._limits = Limits(
            connect_s=timeout_s,
            read_s=timeout_s,
            total_s=timeout_s,
            max_bytes=MAX_TOKEN_ANSWER_BYTES,
        )
        self._lock = threading.Lock()
        self._token, self._expires_at = "", 0.0
        self._failed_at, self._failure = -math.inf, ""

    def get(self) -> str:
        with self._lock:
            if time.monotonic() >= self._expires_at - TOKEN_MARGIN_S:
                self._renew()
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._expires_at = 0.0

    def _renew(self) -> None:
        if time.monotonic() - self._failed_at < self._limits.total_s:
            raise TokenUnavailable(self._failure)
        try:
            self._token, lifetime = self._fetch()
        except TokenUnavailable as exc:
            self._failed_at, self._failure = time.monotonic(), str(exc)
            raise
        self._expires_at = time.monotonic() + lifetime

    def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}
        form["assertion"] = self._assertion()
        try:
            answer = self._outbound.request_sync(
                "POST",
                self._token_uri,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                content=urllib.parse.urlencode(form).encode(),
                limits=self._limits,
            )
        except OutboundError as exc:
            raise TokenUnavailable(f"OAuth token endpoint: {exc}") from None
        document = _json(answer.body)
        token, lifetime = document.get("access_token"), document.get("expires_in")
        if answer.status == 200 and _is_token(token):
            seconds = lifetime if isinstance(lifetime, int) and lifetime > 0 else 3600
            return str(token), float(min(seconds, ASSERTION_LIFETIME_S))
        raise TokenUnavailable(_token_refusal(answer.status, document))

    def _assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self._credentials.service_account_email,
            "scope": SCOPE,
            "aud": GOOGLE_TOKEN_URI,  # Google's audience whatever the token_uri, as google-auth
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_S,
        }
        signed = google.auth.jwt.encode(self._credentials.signer, claims)  # type: ignore[no-untyped-call]
        return bytes(signed).decode("ascii")


def _is_token(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ACCESS_TOKEN_CHARS and value.isascii()


def _token_refusal(status: int, document: dict[str, Any]) -> str:
    if 300 <= status < 400:
        return f"OAuth token endpoint answered a redirect (HTTP {status}), which is not followed"
    code = _code(document.get("error"))
    if code is not None:
        return f"OAuth token endpoint refused the service account: {code} (HTTP {status})"
    if status == 200:
        return "OAuth token endpoint answered without an access token"
    return f"OAuth token endpoint answered HTTP {status}"


class _Client(FCMNotification):  # type: ignore[misc]
    """pyfcm with three changes: one POST per send (no sleeping, no retries: the queue decides);
    the access token from `_AccessToken` (pyfcm fetches one per thread and per call, through
    google-auth); and its per-thread sessions sending through the guarded client, and known, so
    they can be closed."""

    def __init__(
        self, *args: Any, token: _AccessToken, outbound: OutboundClient, **kwargs: Any
    ) -> None:
        super().__init__(*args, adapter=GuardedAdapter(outbound), **kwargs)
        self._token = token
        self._outbound = outbound
        self._sessions_lock = threading.Lock()
        self.sessions: list[requests.Session] = []

    def send_request(self, payload: Any = None, timeout: Any = None) -> requests.Response:
        session = self.session()
        response = session.post(self.fcm_end_point, data=payload, timeout=timeout)
        if response.status_code == 401:  # the access token expired early: get a new one, once
            self._token.invalidate()
            self.thread_local.token_expiry = 0  # the session's header is renewed on next use
            response = self.session().post(self.fcm_end_point, data=payload, timeout=timeout)
        return response

    def session(self) -> requests.Session:
        fresh = getattr(self.thread_local, "requests_session", None) is None
        if fresh:
            # Guarded before pyfcm's first use of it, which asks for a token.
            self.thread_local.requests_session = guard_session(requests.Session(), self._outbound)
            self.thread_local.token_expiry = 0
            with self._sessions_lock:
                self.sessions.append(self.thread_local.requests_session)
        session: requests.Session = self.requests_session
        return session

    def _get_access_token(self) -> str:
        return self._token.get()


class FcmProvider:
    def __init__(
        self, app: PushApp, *, url: str, outbound: OutboundClient, timeout_s: float, threads: int
    ) -> None:
        self.app = app
        self.timeout_s = timeout_s
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            dict(app.service_account), scopes=[SCOPE]
        )
        token_uri = str(app.service_account["token_uri"])
        self.client = _Client(
            credentials=credentials,
            project_id=app.project_id,
            token=_AccessToken(credentials, token_uri, outbound, timeout_s),
            outbound=outbound,
        )
        if url:
            self.client.FCM_END_POINT_BASE = url.rstrip("/")
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=f"baas-fcm-{app.name}")

    async def send(self, device: Device, note: Notification) -> Outcome:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._send, device, note)

    def _send(self, device: Device, note: Notification) -> Outcome:
        try:
            self.client.session()  # fetches an access token when due
            body = self.client.parse_payload(
                fcm_token=device.token,
                notification_title=note.title or None,
                notification_body=note.body or None,
                notification_image=note.image,
                data_payload=data_strings(note.data) or None,
                android_config=android_config(note),
                apns_config=apns_config(note),
            )
            response = self.client.send_request(body, self.timeout_s)
        except TokenUnavailable as exc:
            return Outcome("retry", str(exc))
        except requests.Timeout:
            return Outcome("retry", "FCM did not answer in time")
        except requests.TooManyRedirects:
            return Outcome("retry", "FCM answered a redirect, which is not followed")
        except requests.RequestException as exc:
            return Outcome("retry", f"FCM request failed: {_own_words(exc)}")
        except FCMError as exc:
            return Outcome("retry", f"FCM request failed: {type(exc).__name__}")
        return outcome(response.status_code, response.content, response.headers.get("Retry-After"))

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        for session in self.client.sessions:
            session.close()


def _own_words(exc: requests.RequestException) -> str:
    """The guarded client's message behind a requests exception, else only its kind."""
    cause = exc.__cause__
    return str(cause) if isinstance(cause, OutboundError) else type(exc).__name__


def outcome(status: int, content: bytes, retry_after: str | None) -> Outcome:
    """FCM's answer as an Outcome, from its error JSON's codes only (error.status and
    details[].errorCode, when they look like codes); its messages are never kept."""
    if status == 200:
        name = _json(content).get("name")
        kept = name if isinstance(name, str) and _MESSAGE_NAME.fullmatch(name) else None
        return Outcome("sent", provider_id=kept)
    error = _json(content).get("error")
    error = error if isinstance(error, dict) else {}
    details = error.get("details")
    codes = {
        code
        for d in (details if isinstance(details, list) else [])
        if isinstance(d, dict) and (code := _code(d.get("errorCode"))) is not None
    }
    reason = next(iter(sorted(codes)), None) or _code(error.get("status")) or f"HTTP {status}"
    message = error.get("message")
    if codes & DEAD_CODES:  # not a bare 404: a wrong project or URL is no dead token
        return Outcome("dead", reason)
    if status == 400 and isinstance(message, str) and "registration token" in message.lower():
        return Outcome("dead", "INVALID_ARGUMENT: not a valid registration token")
    if status in RETRY_STATUSES or status == 401:
        return Outcome("retry", reason, _seconds(retry_after))
    if 300 <= status < 400:
        return Outcome("failed", f"FCM answered a redirect (HTTP {status}), which is not followed")
    if isinstance(message, str) and message:  # for the operator's log, never for the API
        log.warning("FCM refused a send: %s (HTTP %d): %r", reason, status, message[:200])
    return Outcome("failed", reason if reason.startswith("HTTP") else f"{reason} (HTTP {status})")


def _code(value: Any) -> str | None:
    return value if isinstance(value, str) and _ERROR_CODE.fullmatch(value) else None


def android_config(note: Notification) -> dict[str, Any]:
    config: dict[str, Any] = {"priority": "HIGH" if note.priority == "high" else "NORMAL"}
    if note.ttl is not None:
        config["ttl"] = f"{note.ttl}s"
    if note.collapse_key:
        config["collapse_key"] = note.collapse_key
    shown: dict[str, Any] = {}
    if note.sound:
        shown["sound"] = note.sound
    if note.thread:
        shown["tag"] = note.thread
    if note.badge is not None:
        shown["notification_count"] = note.badge
    if shown and (note.title or note.body):
        config["notification"] = shown
    return config


def apns_config(note: Notification) -> dict[str, Any] | None:
    """The APNs part of an FCM message: iOS devices reached through FCM take badge and sound."""
    aps = {k: v for k, v in (("badge", note.badge), ("sound", note.sound)) if v is not None}
    return {"payload": {"aps": aps}} if aps else None


def data_strings(data: Any) -> dict[str, str]:
    """FCM data values must be strings: others are sent as JSON."""
    return {
        str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in dict(data).items()
    }


def _json(content: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), 3600.0)
    except ValueError:
        return None  # an HTTP date: the queue's backoff applies
