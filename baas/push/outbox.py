"""The development push provider and its outbox: an app with `"provider": "outbox"` in `push.apps`
sends nothing; each delivery through it is `sent` and recorded in `baas.push_outbox` with the
request APNs or FCM would have received, for admins to read back (`GET /api/push/outbox`,
`baas push outbox`), as the mail outbox does for email.

An entry holds the device (platform, owner, app, token end, locale), the texts it got, and the
request: for iOS the APNs headers and JSON body, for Android FCM's v1 `{"message": ...}`, built by
the same functions the real providers use; the device token itself is left out. Entries are kept
`KEEP_S` seconds and at most `MAX_ENTRIES`, the oldest going first, and go with their message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from baas.db.pool import Database, Executor
from baas.errors import NotFound
from baas.push import apns
from baas.push.apps import PushApp
from baas.push.fcm import android_config, apns_config, data_strings  # what FCM is sent, exactly
from baas.push.notification import Notification
from baas.push.provider import Device, Outcome
from baas.schema.ids import new_record_id, record_id

KEEP_S = 7 * 86_400
MAX_ENTRIES = 10_000
LIST_MAX = 500  # most entries one page returns


class OutboxProvider:
    """Answers `sent` at once and hands back the entry the delivery records with the outcome."""

    def __init__(self, app: PushApp) -> None:
        self.app = app

    async def send(self, device: Device, note: Notification) -> Outcome:
        entry_id = new_record_id()
        headers, payload = request(self.app, device, note)
        kept = {
            "id": entry_id,
            "device_id": device.id,
            "app": self.app.name,
            "title": note.title,
            "body": note.body,
            "headers": headers,
            "payload": payload,
        }
        return Outcome("sent", provider_id=entry_id, kept=kept)

    async def close(self) -> None:
        return None


def request(app: PushApp, device: Device, note: Notification) -> tuple[dict[str, str], Any]:
    """(headers, body) of the request APNs (iOS) or FCM (Android) would get for this device."""
    if device.platform == "ios":
        return _apns_headers(app, device, note), apns.payload(note)
    return {}, {"message": _fcm_message(note)}


def _apns_headers(app: PushApp, device: Device, note: Notification) -> dict[str, str]:
    headers = {
        "apns-topic": app.bundle_id or device.app_id,
        "apns-push-type": apns.push_type(note).value,
        "apns-priority": str(apns.priority(note)),
    }
    if note.ttl is not None:
        headers["apns-expiration"] = str(int(time.time()) + note.ttl)
    if note.collapse_key is not None:
        headers["apns-collapse-id"] = note.collapse_key
    return headers


def _fcm_message(note: Notification) -> dict[str, Any]:
    """FCM's v1 message as the FCM provider sends it (pyfcm's layout), without the token."""
    message: dict[str, Any] = {"android": android_config(note)}
    data = data_strings(note.data)
    if data:
        message["data"] = data
    apns = apns_config(note)
    if apns:
        message["apns"] = apns
    if note.title or note.body or not data:  # data alone is a silent (data-only) message
        texts = (("title", note.title), ("body", note.body), ("image", note.image))
        message["notification"] = {k: v for k, v in texts if v}
    return message


async def keep(tx: Executor, message_id: str, entries: Sequence[Mapping[str, Any]]) -> None:
    """Record the entries of one message's deliveries (in the transaction that marks them sent)."""
    await tx.execute(_KEEP, message_id, list(entries))


async def trim(db: Database) -> None:
    """Forget entries past the retention, and the oldest beyond `MAX_ENTRIES`."""
    await db.execute(_TRIM, float(KEEP_S), MAX_ENTRIES)


async def entries(
    db: Database,
    *,
    user_id: str | None = None,
    message_id: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Entries, newest first; `before` (an entry id) pages on."""
    limit = max(1, min(limit, LIST_MAX))
    rows = await db.fetch(_LIST, user_id, message_id, before, limit)
    return [dict(r.items()) for r in rows]


async def entry(db: Database, entry_id: str) -> dict[str, Any]:
    """One entry; NotFound (outbox_entry_not_found) if there is none."""
    canonical = record_id(entry_id)
    row = await db.fetchrow(_ONE, canonical) if canonical is not None else None
    if row is None:
        raise NotFound(f"no push outbox entry {entry_id[:100]!r}", code="outbox_entry_not_found")
    return dict(row.items())


_KEEP = """
INSERT INTO baas.push_outbox (id, message_id, device_id, user_id, install_id, platform, app,
                              app_id, token_end, locale, title, body, headers, payload)
SELECT k.id, $1, k.device_id, v.user_id, v.install_id, v.platform, k.app, v.app_id,
       right(v.token, 8), v.locale, k.title, k.body, k.headers, k.payload
  FROM jsonb_to_recordset($2::jsonb) AS k(id uuid, device_id uuid, app text, title text,
                                          body text, headers jsonb, payload jsonb)
  JOIN baas.push_devices v ON v.id = k.device_id
ON CONFLICT (id) DO NOTHING
"""

_TRIM = """
DELETE FROM baas.push_outbox
 WHERE created < now() - make_interval(secs => $1)
    OR id IN (SELECT id FROM baas.push_outbox ORDER BY created DESC, id DESC OFFSET $2)
"""

_COLUMNS = (
    "id, created, message_id, device_id, user_id, install_id, platform, app, app_id, token_end,"
    " locale, title, body, headers, payload"
)

_LIST = f"""
SELECT {_COLUMNS} FROM baas.push_outbox
 WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::uuid IS NULL OR message_id = $2)
   AND ($3::uuid IS NULL OR (created, id) < (SELECT created, id FROM baas.push_outbox
                                              WHERE id = $3))
 ORDER BY created DESC, id DESC
 LIMIT $4
"""  # noqa: S608 - the column list is a constant

_ONE = f"SELECT {_COLUMNS} FROM baas.push_outbox WHERE id = $1"  # noqa: S608
