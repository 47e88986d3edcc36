"""APNs through `aioapns`: token-based auth (.p8 key), HTTP/2, one client per configured app.

aioapns has no per-request timeout, so each send is wrapped in one; its connection errors and
Apple's reasons become Outcomes here. Apple's host is aioapns' (production or sandbox per app)
unless `BAAS_APNS_HOST` points elsewhere (a proxy or a local APNs for tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path
from typing import Any

from aioapns import APNs, NotificationRequest, PushType

from baas.push.apps import PushApp
from baas.push.notification import Notification
from baas.push.provider import SENT, Device, Outcome

log = logging.getLogger("baas.push")

# Apple's reasons (developer.apple.com, "Handling notification responses from APNs").
DEAD = frozenset({"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic", "ExpiredToken"})
# 429, and any 5xx: Apple answers 500 and 503, a proxy in front of it (BAAS_APNS_HOST) others.
RETRY_STATUSES = frozenset({"429", *(str(n) for n in range(500, 600))})
# Credentials Apple refused: an operator fixes them, then the retries go through.
RETRY_REASONS = frozenset(
    {
        "ExpiredProviderToken",
        "InvalidProviderToken",
        "MissingProviderToken",
        "TooManyProviderTokenUpdates",
    }
)


class ApnsProvider:
    def __init__(
        self, app: PushApp, *, host: str, ca_file: Path | None, timeout_s: float, connections: int
    ) -> None:
        self.app = app
        self.timeout_s = timeout_s
        # aioapns logs each refused send and connection error; outcomes are recorded per delivery.
        logging.getLogger("aioapns").setLevel(logging.CRITICAL)
        context = ssl.create_default_context()
        if ca_file is not None:
            context.load_verify_locations(cafile=str(ca_file))
        context.set_alpn_protocols(["h2"])
        self.client = APNs(
            key=app.key,
            key_id=app.key_id,
            team_id=app.team_id,
            topic=app.bundle_id,
            use_sandbox=app.sandbox,
            ssl_context=context,
            max_connections=connections,
            max_connection_attempts=1,  # (it sleeps 1 s after a failed connect) the queue retries
            err_func=_quiet,
        )
        base = self.client.pool.protocol_class
        attributes: dict[str, Any] = {
            "on_data_received": _acknowledging(base),
            "connection_lost": _forgiving(base),
        }
        if host:
            name, _, port = host.rpartition(":") if ":" in host else (host, "", "443")
            attributes |= {"APNS_SERVER": name, "APNS_PORT": int(port)}
        self.client.pool.protocol_class = type("ConfiguredApns", (base,), attributes)

    async def send(self, device: Device, note: Notification) -> Outcome:
        request = NotificationRequest(
            device_token=device.token,
            message=payload(note),
            time_to_live=note.ttl,
            priority=priority(note),
            collapse_key=note.collapse_key,
            push_type=push_type(note),
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await self.client.send_notification(request)
        except TimeoutError:
            return Outcome("retry", "APNs did not answer in time")
        except Exception as exc:  # aioapns raises ConnectionError, OSError, h2 errors
            return Outcome("retry", f"APNs connection failed: {type(exc).__name__}: {exc}"[:300])
        if result.is_successful:
            return (
                Outcome("sent", provider_id=result.notification_id)
                if result.notification_id
                else SENT
            )
        reason = result.description or f"status {result.status}"
        if reason in DEAD:
            return Outcome("dead", reason)
        if result.status in RETRY_STATUSES or reason in RETRY_REASONS:
            return Outcome("retry", reason)
        return Outcome("failed", reason)

    async def close(self) -> None:
        """Close the connections and wait until they are gone (aioapns' own close only starts
        the TLS shutdown); abort any whose peer never finishes it."""
        pool = self.client.pool
        pool.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                while pool.connections:  # noqa: ASYNC110 - aioapns offers nothing to await
                    await asyncio.sleep(0.01)
        for connection in list(pool.connections):
            if connection.transport is not None:
                connection.transport.abort()


def _acknowledging(base: type) -> Any:
    """aioapns never returns HTTP/2 flow-control credit for response bodies, so after ~64 KiB of
    error answers (dead tokens) on one connection APNs can send no more and sends stall until
    the idle timer drops the connection (aioapns PR #75). Acknowledge each body as it arrives."""

    handle = base.on_data_received  # type: ignore[attr-defined]

    def on_data_received(self: Any, raw_data: bytes, stream_id: int) -> None:
        handle(self, raw_data, stream_id)
        # sent by the flush that ends data_received
        self.conn.acknowledge_received_data(len(raw_data), stream_id)

    return on_data_received


def _forgiving(base: type) -> Any:
    """When a connection drops, aioapns fails each pending request; one it was waiting for that
    our timeout already cancelled raises InvalidStateError there, and the requests after it
    are never failed (they wait out their own timeouts). Forget the cancelled ones first."""
    lost = base.connection_lost  # type: ignore[attr-defined]

    def connection_lost(self: Any, exc: Exception | None) -> None:
        self.requests = {k: f for k, f in self.requests.items() if not f.done()}
        lost(self, exc)

    return connection_lost


def _alerts(note: Notification) -> bool:
    return bool(note.title or note.body)


def priority(note: Notification) -> int:
    """`apns-priority`: 10 (at once) for high-priority alerts; 5 otherwise (Apple requires 5
    for background pushes)."""
    return 10 if note.priority == "high" and _alerts(note) else 5


def push_type(note: Notification) -> PushType:
    """`apns-push-type`: an alert, or a background (data-only) update."""
    return PushType.ALERT if _alerts(note) else PushType.BACKGROUND


def payload(note: Notification) -> dict[str, Any]:
    """The APNs JSON: `aps` (alert, badge, sound, thread-id, ...) and the app's data beside it."""
    aps: dict[str, Any] = {}
    if _alerts(note):
        aps["alert"] = {k: v for k, v in (("title", note.title), ("body", note.body)) if v}
    else:
        aps["content-available"] = 1  # data only: a background update
    if note.badge is not None:
        aps["badge"] = note.badge
    if note.sound:
        aps["sound"] = note.sound
    if note.thread:
        aps["thread-id"] = note.thread
    if note.image:
        aps["mutable-content"] = 1  # a notification service extension fetches the image
    out: dict[str, Any] = {**note.data, "aps": aps}
    if note.image:
        out["image"] = note.image
    return out


async def _quiet(_request: NotificationRequest, _result: Any) -> None:
    """aioapns logs every refusal at error level; outcomes are recorded per delivery instead."""
