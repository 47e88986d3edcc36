"""FCM HTTP v1 through `pyfcm`, with the app's service account (google-auth OAuth 2.0).

pyfcm is synchronous and, left alone, sleeps for any Retry-After and retries 5xx itself; here it
runs in a bounded thread pool, without its retries, with a timeout per request, and its answers
(status and Google's error details) become Outcomes so the queue does the retrying, honouring
Retry-After. `BAAS_FCM_URL` replaces Google's endpoint (a proxy or a local FCM for tests).
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import google.auth.transport.requests
import orjson
import requests
from google.auth.exceptions import GoogleAuthError, RefreshError
from google.oauth2 import service_account
from pyfcm import FCMNotification
from pyfcm.errors import FCMError
from requests.adapters import HTTPAdapter

from baas.push.apps import PushApp
from baas.push.notification import Notification
from baas.push.provider import Device, Outcome

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# FCM's error codes (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode) meaning the token
# will never work: the app was uninstalled, or the token belongs to another project.
DEAD_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})


class _Client(FCMNotification):  # type: ignore[misc]
    """pyfcm with three changes: one POST per send (no sleeping, no retries: the queue decides);
    one access token shared by every thread while it is valid (pyfcm fetches one per thread
    and per call), fetched within the send timeout; and its per-thread sessions known, so they
    can be closed."""

    def __init__(self, *args: Any, token_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token_lock = threading.Lock()
        self._token_timeout_s = token_timeout_s
        self._token_failed_at = -math.inf
        self.sessions: list[requests.Session] = []

    def send_request(self, payload: Any = None, timeout: Any = None) -> requests.Response:
        session = self.session()
        response = session.post(self.fcm_end_point, data=payload, timeout=timeout)
        if response.status_code == 401:  # the access token expired early: get a new one, once
            self.credentials.token = None  # not valid any more: the next call refreshes
            self.thread_local.token_expiry = 0
            response = self.session().post(self.fcm_end_point, data=payload, timeout=timeout)
        return response

    def session(self) -> requests.Session:
        fresh = getattr(self.thread_local, "requests_session", None) is None
        session: requests.Session = self.requests_session
        if fresh:
            session.trust_env = False  # no proxy lookup in os.environ on every request
            with self._token_lock:
                self.sessions.append(session)
        return session

    def _get_access_token(self) -> str:
        with self._token_lock:
            if not self.credentials.valid:
                self._refresh()
            return str(self.credentials.token)

    def _refresh(self) -> None:
        """A new access token within the send timeout (google-auth waits 120 s by default); for
        as long again after a failure, the sends waiting on the lock fail at once, not in turn."""
        if time.monotonic() - self._token_failed_at < self._token_timeout_s:
            raise RefreshError("the OAuth token endpoint failed a moment ago")  # type: ignore[no-untyped-call]
        request = google.auth.transport.requests.Request()
        try:
            self.credentials.refresh(functools.partial(request, timeout=self._token_timeout_s))
        except Exception:
            self._token_failed_at = time.monotonic()
            raise
        finally:
            request.session.close()


class FcmProvider:
    def __init__(
        self, app: PushApp, *, url: str, ca_file: Path | None, timeout_s: float, threads: int
    ) -> None:
        self.app = app
        self.timeout_s = timeout_s
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            dict(app.service_account), scopes=[SCOPE]
        )
        adapter = HTTPAdapter(max_retries=0, pool_maxsize=threads)
        self.client = _Client(
            credentials=credentials,
            project_id=app.project_id,
            adapter=adapter,
            token_timeout_s=timeout_s,
        )
        if url:
            self.client.FCM_END_POINT_BASE = url.rstrip("/")
        self._verify = str(ca_file) if ca_file is not None else None
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=f"baas-fcm-{app.name}")

    async def send(self, device: Device, note: Notification) -> Outcome:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._send, device, note)

    def _send(self, device: Device, note: Notification) -> Outcome:
        try:
            session = self.client.session()  # fetches an access token when due
            if self._verify is not None:
                session.verify = self._verify
            body = self.client.parse_payload(
                fcm_token=device.token,
                notification_title=note.title or None,
                notification_body=note.body or None,
                notification_image=note.image,
                data_payload=_strings(note.data) or None,
                android_config=android_config(note),
                apns_config=_apns_config(note),
            )
            response = self.client.send_request(body, self.timeout_s)
        except requests.Timeout:
            return Outcome("retry", "FCM did not answer in time")
        except (requests.RequestException, GoogleAuthError, FCMError) as exc:
            # pyfcm wraps a failed token fetch (Google unreachable, key refused) in its own error
            return Outcome("retry", f"FCM request failed: {type(exc).__name__}: {exc}"[:300])
        return outcome(response.status_code, response.content, response.headers.get("Retry-After"))

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        for session in self.client.sessions:
            session.close()


def outcome(status: int, content: bytes, retry_after: str | None) -> Outcome:
    """FCM's answer as an Outcome (its error JSON: error.status and details[].errorCode)."""
    if status == 200:
        return Outcome("sent", provider_id=str(_json(content).get("name", "")) or None)
    error = _json(content).get("error") or {}
    codes = {
        str(d["errorCode"])
        for d in error.get("details") or []
        if isinstance(d, dict) and d.get("errorCode")
    }
    reason = next(iter(sorted(codes)), None) or str(error.get("status") or f"HTTP {status}")
    message = str(error.get("message") or "")[:200]
    if codes & DEAD_CODES:  # not a bare 404: a wrong project or URL is no dead token
        return Outcome("dead", reason)
    if status == 400 and "registration token" in message.lower():
        return Outcome("dead", "INVALID_ARGUMENT: not a valid registration token")
    if status in RETRY_STATUSES or status == 401:
        return Outcome("retry", reason, _seconds(retry_after))
    return Outcome("failed", f"{reason}: {message}" if message else reason)


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


def _apns_config(note: Notification) -> dict[str, Any] | None:
    # iOS devices reached through FCM: the badge and sound go in the APNs part.
    aps = {k: v for k, v in (("badge", note.badge), ("sound", note.sound)) if v is not None}
    return {"payload": {"aps": aps}} if aps else None


def _strings(data: Any) -> dict[str, str]:
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
