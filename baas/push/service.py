"""Sending push: a message is written with its fan-out job in one transaction and its id returned
at once; delivery happens through the queue (`delivery.py`). A send nothing of which could be
delivered (no app configured for its devices) is refused first (`reach.py`). Status counts every
device's delivery, so partial success reads as such (sent 998, failed 2), and names the most
frequent reasons of failures.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from baas.auth.identity import Identity
from baas.context import AppContext
from baas.db.pool import Executor
from baas.db.sqltree import Params
from baas.errors import Conflict, Forbidden, NotFound, Unauthorized
from baas.jobs import queue
from baas.push import access, reach
from baas.push.notification import SendRequest, parse_send
from baas.schema.ids import new_record_id, record_id

FANOUT = "push.fanout"
DELIVER = "push.deliver"
PENDING = ("queued", "sending", "retrying")


async def send(ctx: AppContext, caller: Identity, body: Any) -> dict[str, Any]:
    """Validate and queue a message; its id and state."""
    require_signed_in(caller)
    request = parse_send(body)
    await _authorize(ctx, caller, request)
    if request.target.filter is not None:
        access.users_filter(ctx, request.target.filter, Params())  # 400 now, not in the job
    await reach.check(ctx, request.target)  # 409 now if nothing could be delivered
    async with ctx.db.transaction() as tx:
        message_id = await create_message(tx, request, sender(caller))
    return await message_status(ctx, message_id, caller)


async def create_message(
    tx: Executor, request: SendRequest, created_by: str, message_id: str | None = None
) -> str:
    """Write a message and its fan-out job (at its send time) on `tx`."""
    message_id = message_id or new_record_id()
    send_at = request.send_at or datetime.now(UTC)
    inserted = await tx.fetchval(
        "INSERT INTO baas.push_messages (id, target, notification, send_at, created_by)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING id",
        message_id,
        request.target.to_json(),
        request.notification.to_json(),
        send_at,
        created_by,
    )
    if inserted is not None:
        await queue.enqueue(tx, FANOUT, {"message": message_id}, run_at=send_at, max_attempts=20)
    return message_id


async def _authorize(ctx: AppContext, caller: Identity, request: SendRequest) -> None:
    """Admins send anything; users only to users, and only if `push.user_send_rule` lets them."""
    if caller.is_admin:
        return
    rule = ctx.runtime["push.user_send_rule"]
    if rule is None or caller.kind != "user":
        raise Forbidden("only admins and service keys may send push", code="push_not_allowed")
    t = request.target
    if t.devices or t.topics or t.filter is not None:
        raise Forbidden("users may send to users only", code="push_not_allowed")
    allowed = await access.users_passing(ctx, rule, t.users, caller.id)
    refused = [u for u in t.users if u not in allowed]
    if refused:
        raise Forbidden(
            f"you may not send push to {len(refused)} of these users", code="push_not_allowed"
        )


def sender(caller: Identity) -> str:
    """Who sent a message: users by id (their email may change), others by their label."""
    return f"user:{caller.id}" if caller.kind == "user" else caller.label


def require_signed_in(caller: Identity) -> None:
    """Sending, and reading what was sent, needs credentials: without any, a 401 (not a 403:
    signing in, or a service key, is what would help)."""
    if caller.kind == "anonymous":
        raise Unauthorized("sign in, or use a service key, to send push or read what was sent")


def require_admin(caller: Identity) -> None:
    require_signed_in(caller)
    if not caller.is_admin:
        raise Forbidden("for admins and service keys", code="push_not_allowed")


async def message_status(
    ctx: AppContext, message_id: str, caller: Identity | None = None
) -> dict[str, Any]:
    """A message with its delivery counts, in one statement; a user sees only their own."""
    canonical = record_id(message_id)
    row = None
    if canonical is not None:
        row = await ctx.db.fetchrow(
            _STATUS,
            canonical,
            MAX_REASONS,
        )
    mine = (
        caller is None or caller.is_admin or (row is not None and row["created_by"] == caller.label)
    )
    if row is None or not mine:
        raise NotFound("no such push message", code="message_not_found")
    out = dict(row.items())
    counts = {
        s: out["counts"].get(s, 0) for s in ("queued", "sending", "retrying", "sent", "failed")
    }
    out["counts"] = counts
    out["status"] = _summary(out["state"], counts)
    return out


MAX_REASONS = 5  # the most frequent failure reasons a message's status lists
_STATUS = """
SELECT m.id, m.state, m.send_at, m.created, m.created_by, m.fanned_out, m.finished, m.total,
       m.target, m.notification, coalesce(c.counts, '{}') AS counts,
       coalesce(f.failures, '[]') AS failures
  FROM baas.push_messages m
  LEFT JOIN LATERAL (
    SELECT jsonb_object_agg(status, n) AS counts
      FROM (SELECT status, count(*) AS n FROM baas.push_deliveries
             WHERE message_id = m.id GROUP BY status) s) c ON true
  LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object('status', status, 'reason', reason, 'devices', n)
                     ORDER BY n DESC, reason) AS failures
      FROM (SELECT status, reason, count(*) AS n FROM baas.push_deliveries
             WHERE message_id = m.id AND status IN ('failed', 'retrying') AND reason IS NOT NULL
             GROUP BY status, reason ORDER BY n DESC, reason LIMIT $2) r) f ON true
 WHERE m.id = $1
"""


def _summary(state: str, counts: dict[str, int]) -> str:
    """scheduled, sending, sent (all), partially_sent, failed (none sent), or cancelled."""
    if state in ("scheduled", "cancelled"):
        return state
    if state == "sending" or any(counts[s] for s in PENDING):
        return "sending"
    if counts["failed"] == 0:
        return "sent"
    return "failed" if counts["sent"] == 0 else "partially_sent"


async def deliveries(
    ctx: AppContext, message_id: str, status: str | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """One page of a message's per-device deliveries (keyset on device id)."""
    rows = await ctx.db.fetch(
        "SELECT d.device_id, v.platform, v.user_id, d.status, d.attempts, d.reason,"
        " d.provider_id, d.updated FROM baas.push_deliveries d"
        " LEFT JOIN baas.push_devices v ON v.id = d.device_id WHERE d.message_id = $1"
        " AND ($2::text IS NULL OR d.status = $2) AND ($3::uuid IS NULL OR d.device_id > $3)"
        " ORDER BY d.device_id LIMIT $4",
        record_id(message_id),
        status,
        after,
        limit,
    )
    return [dict(r.items()) for r in rows]


async def cancel(ctx: AppContext, message_id: str) -> dict[str, Any]:
    """Cancel a message that has not started sending."""
    canonical = record_id(message_id)
    done = await ctx.db.fetchval(
        "UPDATE baas.push_messages SET state = 'cancelled', finished = now()"
        " WHERE id = $1 AND state = 'scheduled' RETURNING id",
        canonical,
    )
    if done is None:
        status = await message_status(ctx, message_id)  # 404 if absent
        raise Conflict(
            f"the message is {status['status']}: too late to cancel", code="message_state"
        )
    return await message_status(ctx, message_id)
