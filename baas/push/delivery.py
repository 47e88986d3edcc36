"""Push delivery as jobs: fan a message out to its devices, then send in batches.

`push.fanout` resolves the target (users, devices, topics, a filter over users) to enabled
devices with one INSERT ... SELECT into `baas.push_deliveries`, and enqueues one `push.deliver`
job per range of `BATCH` device ids, all in one transaction: devices are never all loaded at
once. A delivery job walks its range in chunks of `push_concurrency`: marks the chunk `sending`,
sends it concurrently, and records every outcome (and disables dead tokens) in one statement.
A job that crashed is claimed again and re-sends only its `sending` rows, the sends that were
in flight. Transient failures leave rows `retrying` and the job retried later (at the
provider's Retry-After if it gave one); on the job's last attempt they count as failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from baas.context import AppContext
from baas.db.sqltree import Compiled, Params, template
from baas.errors import ApiError
from baas.jobs import queue
from baas.jobs.queue import Fail, Job, Retry
from baas.push import access, outbox
from baas.push.apps import no_app
from baas.push.notification import Notification, Target
from baas.push.provider import Device, Outcome
from baas.push.senders import Senders
from baas.push.service import DELIVER

log = logging.getLogger("baas.push")
BATCH = 1000  # devices per delivery job
FANOUT_TIMEOUT = "10min"  # the fan-out's statements (millions of devices take seconds)

_FANOUT = """
INSERT INTO baas.push_deliveries (message_id, device_id)
SELECT CAST(__mid AS UUID), __d.id FROM baas.push_devices AS __d
WHERE __d.enabled AND (
  __d.user_id = ANY(CAST(__users AS UUID[]))
  OR __d.id = ANY(CAST(__devices AS UUID[]))
  OR __d.id IN (SELECT __td.device_id FROM baas.push_topic_devices AS __td
                WHERE __td.topic = ANY(CAST(__topics AS TEXT[])))
  OR __d.user_id IN (SELECT __tu.user_id FROM baas.push_topic_users AS __tu
                     WHERE __tu.topic = ANY(CAST(__topics AS TEXT[])))
  OR __byfilter)
ON CONFLICT DO NOTHING
"""

_RANGES = """
SELECT device_id, total FROM (
  SELECT device_id, row_number() OVER (ORDER BY device_id) AS n, count(*) OVER () AS total
    FROM baas.push_deliveries WHERE message_id = $1) s
 WHERE n % $2 = 1 ORDER BY device_id
"""

_CLAIM = """
WITH c AS (
  SELECT device_id FROM baas.push_deliveries
   WHERE message_id = $1 AND status IN ('queued', 'sending', 'retrying')
     AND ($2::uuid IS NULL OR device_id >= $2) AND ($3::uuid IS NULL OR device_id < $3)
     AND ($4::uuid IS NULL OR device_id > $4)
   ORDER BY device_id LIMIT $5 FOR UPDATE),
u AS (
  UPDATE baas.push_deliveries d SET status = 'sending', attempts = d.attempts + 1, updated = now()
    FROM c WHERE d.message_id = $1 AND d.device_id = c.device_id RETURNING d.device_id)
SELECT u.device_id, v.platform, v.token, v.app_id, v.locale, v.enabled
  FROM u LEFT JOIN baas.push_devices v ON v.id = u.device_id ORDER BY u.device_id
"""

_RECORD = """
WITH dead AS (
  UPDATE baas.push_devices v SET enabled = false, disabled_reason = r.reason, updated = now()
    FROM unnest($6::uuid[], $7::text[]) AS r(id, reason) WHERE v.id = r.id RETURNING v.id)
UPDATE baas.push_deliveries d SET status = r.status, reason = r.reason, provider_id = r.pid,
       updated = now()
  FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) AS r(device_id, status, reason, pid)
 WHERE d.message_id = $1 AND d.device_id = r.device_id
"""

_FINISH = """
UPDATE baas.push_messages SET state = 'done', finished = now()
 WHERE id = $1 AND state = 'sending' AND NOT EXISTS (
   SELECT 1 FROM baas.push_deliveries WHERE message_id = $1
      AND status IN ('queued', 'sending', 'retrying'))
"""


def _fanout_statement(ctx: AppContext, target: Target) -> Compiled:
    p = Params()
    by_filter: exp.Expression = exp.false()
    if target.filter is not None:
        chosen = access.users_filter(ctx, target.filter, p)
        by_filter = template("__d.user_id IN (__q)", d="d", q=exp.Subquery(this=chosen))
    query = template(
        _FANOUT,
        d="d",
        td="td",
        tu="tu",
        mid=p.arg("message"),
        users=p.arg("users"),
        devices=p.arg("devices"),
        topics=p.arg("topics"),
        byfilter=exp.Paren(this=by_filter),
    )
    return p.compile(query)


async def fanout(ctx: AppContext, job: Job) -> None:
    message = job.payload["message"]
    async with ctx.db.transaction() as tx:
        # a background statement over every targeted device: not an API query's budget
        await tx.execute(f"SET LOCAL statement_timeout = '{FANOUT_TIMEOUT}'")
        row = await tx.fetchrow(
            "SELECT state, target FROM baas.push_messages WHERE id = $1 FOR UPDATE", message
        )
        if row is None or row["state"] != "scheduled":
            return  # cancelled, or already fanned out by an earlier run
        target = Target.from_json(row["target"])
        try:
            q = _fanout_statement(ctx, target)
        except ApiError as exc:  # the schema changed under a scheduled filter
            raise Fail(f"the message's filter no longer compiles: {exc.message}") from None
        args = {
            "message": message,
            "users": list(target.users),
            "devices": list(target.devices),
            "topics": list(target.topics),
        }
        await tx.execute(q.sql, *q.bind(args))
        starts = await tx.fetch(_RANGES, message, BATCH)
        total = starts[0]["total"] if starts else 0
        await tx.execute(
            "UPDATE baas.push_messages SET total = $2, fanned_out = now(),"
            " state = CASE WHEN $2 = 0 THEN 'done' ELSE 'sending' END,"
            " finished = CASE WHEN $2 = 0 THEN now() END WHERE id = $1",
            message,
            total,
        )
        bounds = [r["device_id"] for r in starts]
        for i, low in enumerate(bounds):
            high = bounds[i + 1] if i + 1 < len(bounds) else None
            payload = {"message": message, "from": low, "to": high}
            await queue.enqueue(tx, DELIVER, payload, max_attempts=12)


class Deliverer:
    """Runs `push.deliver` jobs with this process's provider clients."""

    def __init__(self, ctx: AppContext, senders: Senders) -> None:
        self.ctx = ctx
        self.senders = senders

    async def deliver(self, job: Job) -> None:
        p = job.payload
        message = p["message"]
        row = await self.ctx.db.fetchrow(
            "SELECT notification, state FROM baas.push_messages WHERE id = $1", message
        )
        if row is None or row["state"] not in ("sending", "done"):
            return
        note = Notification.from_json(row["notification"])
        retrying, waits, kept = 0, [], False
        cursor = None
        size = self.ctx.settings.push_concurrency
        while True:
            rows = await self.ctx.db.fetch(
                _CLAIM, message, p.get("from"), p.get("to"), cursor, size
            )
            if not rows:
                break
            cursor = rows[-1]["device_id"]
            outcomes = await asyncio.gather(*(self._send(r, note) for r in rows))
            kept = await self._record(message, rows, outcomes, final=job.last_attempt) or kept
            retries = [o for o in outcomes if o.verdict == "retry"]
            retrying += len(retries)
            waits += [o.retry_after_s for o in retries if o.retry_after_s is not None]
        await self.ctx.db.execute(_FINISH, message)
        if kept:
            await outbox.trim(self.ctx.db)
        if retrying and not job.last_attempt:
            raise Retry(f"{retrying} sends failed for now; retrying", max(waits) if waits else None)

    async def _send(self, row: Any, note: Notification) -> Outcome:
        if row["platform"] is None:
            return Outcome("failed", "device_unregistered")
        if not row["enabled"]:
            return Outcome("failed", "device_disabled")
        device = Device(
            str(row["device_id"]), row["platform"], row["token"], row["app_id"], row["locale"]
        )
        provider = self.senders.provider_for(device.platform, device.app_id)
        if provider is None:
            return Outcome("failed", no_app(self.senders.apps(), device.platform, device.app_id))
        try:
            return await provider.send(device, note.for_locale(device.locale))
        except Exception as exc:  # a provider bug must not lose the batch's other outcomes
            log.exception("push send to device %s failed", device.id)
            return Outcome("retry", f"{type(exc).__name__}: {exc}"[:300])

    async def _record(
        self, message: str, rows: Sequence[Any], outcomes: Sequence[Outcome], *, final: bool
    ) -> bool:
        """Record the outcomes in one statement (with the outbox's entries, in one transaction);
        whether any went to the outbox."""
        ids, statuses, reasons, pids, dead, dead_reasons = [], [], [], [], [], []
        kept = [o.kept for o in outcomes if o.kept is not None]
        for row, o in zip(rows, outcomes, strict=True):
            ids.append(row["device_id"])
            statuses.append(_status(o, final))
            reasons.append(o.reason or None)
            pids.append(o.provider_id)
            if o.verdict == "dead":
                dead.append(row["device_id"])
                dead_reasons.append(o.reason)
        args = (message, ids, statuses, reasons, pids, dead, dead_reasons)
        if not kept:
            await self.ctx.db.execute(_RECORD, *args)
            return False
        async with self.ctx.db.transaction() as tx:
            await tx.execute(_RECORD, *args)
            await outbox.keep(tx, message, kept)
        return True


def _status(o: Outcome, final: bool) -> str:
    if o.verdict == "sent":
        return "sent"
    if o.verdict == "retry" and not final:
        return "retrying"
    return "failed"
