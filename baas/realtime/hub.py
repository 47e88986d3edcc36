"""The realtime hub of one process: its connections and subscriptions, and the change pump.

The pump reads the change log when woken (a write of this process committed, or another
instance's NOTIFY said one of its writes did) and every `POLL_S` regardless (writes made by
anything else: psql, migrations, other tools; `realtime_poll_ms`), in batches,
in order, and hands each batch to the subscribers it concerns (`fanout`: one judging query per
collection at most, none for free subscribers), queuing the entries on each connection; nothing
here waits for a client except a replay, which goes at its client's pace. Fan-out to many
subscribers goes in slices of a few milliseconds (`slices`), so requests keep their turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from baas.context import AppContext
from baas.loops import Outage
from baas.realtime import changelog, fanout, slices
from baas.realtime.access import Spec
from baas.realtime.changelog import Change
from baas.realtime.connection import Connection, Subscription
from baas.realtime.protocol import CLOSE_IDLE
from baas.realtime.wire import Flusher
from baas.schema.models import Collection

log = logging.getLogger("baas.realtime")
TICK_S = 1.0
TRIM_EVERY_S = 60.0
RETRY_S = 1.0
REPLAY_CHUNK = 100  # changes judged and queued at a time during a replay


class Hub:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.position = 0  # the last change handed out (or skipped: nobody was subscribed)
        self.connections: set[Connection] = set()
        self.flusher = Flusher()  # drains the connections' outboxes once per loop iteration
        self._collections: dict[str, set[Subscription]] = defaultdict(set)
        self._records: dict[tuple[str, str], set[Subscription]] = defaultdict(set)
        self._ips: Counter[str] = Counter()
        self._users: Counter[str] = Counter()
        self._behind = False  # changes came while nobody was subscribed (and were not read)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._schema_version = ctx.schema.version
        self._pump_outage = Outage("realtime change pump", log)
        self._trim_outage = Outage("realtime change log trim", log)
        self.on_tick: list[Any] = []  # callbacks(now) run every tick (token expiry, presence)
        # one object per distinct spec: fan-out decides per spec object, once per batch
        self._specs: weakref.WeakValueDictionary[Spec, Spec] = weakref.WeakValueDictionary()

    async def start(self) -> None:
        self.position = await changelog.high_water(self.ctx.db)
        self._tasks = [
            asyncio.create_task(self._pump(), name="baas-realtime-pump"),
            asyncio.create_task(self._ticks(), name="baas-realtime-ticks"),
            asyncio.create_task(self._trims(), name="baas-realtime-trim"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def intern(self, spec: Spec) -> Spec:
        """The one object of the subscriptions asking the same as `spec`."""
        return self._specs.setdefault(spec, spec)

    def wake(self) -> None:
        self._wake.set()

    async def on_notify(self, payload: str) -> None:
        if not self.ctx.db.bells.mine(payload):  # our own writes woke us already
            self.wake()

    # -- connections and subscriptions ------------------------------------------------------------

    def admit(self, conn: Connection) -> bool:
        """Count a new connection against its address; False when over the limit."""
        if conn.ip is not None:
            if self._ips[conn.ip] >= self.ctx.settings.realtime_max_connections_per_ip:
                return False
            self._ips[conn.ip] += 1
        self.connections.add(conn)
        return True

    def admit_user(self, conn: Connection, user_id: str) -> bool:
        if self._users[user_id] >= self.ctx.settings.realtime_max_connections_per_user:
            return False
        self._users[user_id] += 1
        return True

    def release_user(self, user_id: str) -> None:
        self._users[user_id] -= 1
        if self._users[user_id] <= 0:
            del self._users[user_id]

    def forget(self, conn: Connection) -> None:
        """The connection is gone (or cut): drop its subscriptions and counts."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        for sub in list(conn.subs.values()):
            self.remove(sub)
        if conn.ip is not None:
            self._ips[conn.ip] -= 1
            if self._ips[conn.ip] <= 0:
                del self._ips[conn.ip]
        if conn.identity.kind == "user" and conn.identity.id:
            self.release_user(conn.identity.id)

    async def catch_up(self) -> None:
        """Before a subscription is added to an instance that had none (whose pump read nothing
        meanwhile): move to the end of the log; what committed before is not news to it."""
        if self._behind and not self._collections and not self._records:
            last = await changelog.high_water(self.ctx.db)
            if not self._collections and not self._records:
                self.position = max(self.position, last)
                self._behind = False

    def add(self, sub: Subscription) -> int:
        """Register a subscription; returns the change id it starts after."""
        sub.conn.subs[sub.id] = sub
        if sub.record is None:
            self._collections[sub.collection].add(sub)
        else:
            self._records[(sub.collection, sub.record)].add(sub)
        return self.position

    def subscriptions(self) -> Iterable[Subscription]:
        for group in (*self._collections.values(), *self._records.values()):
            yield from group

    def remove(self, sub: Subscription) -> None:
        if sub.conn.subs.get(sub.id) is sub:
            del sub.conn.subs[sub.id]
        index: Any = self._collections if sub.record is None else self._records
        key = sub.collection if sub.record is None else (sub.collection, sub.record)
        group = index.get(key)
        if group is not None:
            group.discard(sub)
            if not group:
                del index[key]

    # -- the pump ---------------------------------------------------------------------------------

    async def _pump(self) -> None:
        poll_s = self.ctx.settings.realtime_poll_ms / 1000
        while True:
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation that
            # lands as the wait ends (the task then never stops)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain()
            except Exception as exc:  # backs off (a wake cuts it short), logs an outage once
                await self._pump_outage.pause(exc, self._wake)
                self._wake.set()
                continue
            self._pump_outage.recovered()

    async def _drain(self) -> None:
        db = self.ctx.db
        while True:
            if not self._collections and not self._records:
                self._behind = True  # nobody to send to: no query (see catch_up)
                return
            batch = await changelog.next_changes(db, self.position)
            if batch:
                await self._dispatch(batch)
            if len(batch) < changelog.BATCH:
                return

    async def _dispatch(self, batch: list[Change]) -> None:
        """Hand a batch to its subscribers: those subscribed when it is read (a subscription
        made later starts after it), judged first, then served all at once (a failed query
        leaves nothing half-sent: the batch is read again)."""
        previous, self.position = self.position, batch[-1].pos
        work = []
        for name, changes in _by_collection(batch).items():
            c = self.ctx.schema.collection(name)
            subs = self._subscribers(name, changes) if c is not None else []
            if c is not None and subs:
                work.append((c, changes, subs))
        served = []
        try:
            for c, changes, subs in work:
                served += await self._entries(c, changes, subs)
        except BaseException:
            self.position = previous
            raise
        turn = slices.Slice()
        for sub, entry in served:
            if turn.spent():
                await turn.pause()
            if sub.conn.subs.get(sub.id) is sub:  # not unsubscribed meanwhile
                sub.deliver(entry)

    def _subscribers(self, name: str, changes: list[Change]) -> list[Subscription]:
        subs = list(self._collections.get(name, ()))
        for record in dict.fromkeys(ch.record_id for ch in changes):
            subs += self._records.get((name, record), ())
        return subs

    async def _entries(
        self, c: Collection, changes: list[Change], subs: list[Subscription]
    ) -> list[tuple[Subscription, bytes]]:
        while True:
            try:
                return await fanout.entries(self.ctx, c, changes, subs)
            except fanout.Failed as failed:
                ended = [s for s in subs if s.spec == failed.spec]
                for sub in ended:
                    self.end(sub, "filter_failed", failed.message)
                subs = [s for s in subs if s.spec != failed.spec]

    def end(self, sub: Subscription, reason: str, message: str = "") -> None:
        """Stop a subscription from the server side, telling the client why."""
        self.remove(sub)
        body = {"type": "unsubscribed", "id": sub.id, "reason": reason}
        if message:
            body["message"] = message
        sub.conn.send(body)

    # -- replay -----------------------------------------------------------------------------------

    async def replay(self, sub: Subscription, since: int, upto: int) -> None:
        """Send `sub` what it missed in (since, upto], then what arrived meanwhile."""
        ctx = self.ctx
        c = ctx.schema.collection(sub.collection)
        changes = None
        if c is not None:
            changes = await changelog.replay(
                ctx.db, c.name, sub.record, since, upto, ctx.settings.realtime_max_replay
            )
        if changes is None or c is None:
            sub.conn.send({"type": "refetch", "id": sub.id, "change_id": upto})
        else:
            for start in range(0, len(changes), REPLAY_CHUNK):
                chunk = changes[start : start + REPLAY_CHUNK]
                for _sub, entry in await self._entries(c, chunk, [sub]):
                    await sub.conn.put(entry)  # at the client's pace (the buffer holds live ones)
        while sub.buffer:  # what arrived meanwhile (live entries keep coming while we wait)
            held, sub.buffer = sub.buffer, []
            for entry in held:
                await sub.conn.put(entry)
        sub.buffer = None

    # -- timers -----------------------------------------------------------------------------------

    async def _ticks(self) -> None:
        settings = self.ctx.settings
        interval = max(0.05, min(TICK_S, settings.realtime_ping_interval_s / 2))
        while True:
            await asyncio.sleep(interval)
            try:
                self.tick(time.monotonic())
            except Exception:
                log.exception("realtime timers failed")

    def tick(self, now: float) -> None:
        settings = self.ctx.settings
        if self.ctx.schema.version != self._schema_version:
            self._schema_version = self.ctx.schema.version
            for sub in list(self.subscriptions()):
                if self.ctx.schema.collection(sub.collection) is None:
                    self.end(sub, "collection_deleted")
        for conn in list(self.connections):
            if now - conn.last_heard > settings.realtime_idle_timeout_s:
                conn.cut(CLOSE_IDLE, "idle: answer pings with pong")
            elif now - conn.last_ping >= settings.realtime_ping_interval_s:
                conn.last_ping = now
                conn.send({"type": "ping"})
        for callback in self.on_tick:
            callback(now)

    async def _trims(self) -> None:
        while True:
            await asyncio.sleep(TRIM_EVERY_S)
            try:
                await changelog.trim(self.ctx.db, self.ctx.settings.realtime_retention_s)
            except Exception as exc:
                self._trim_outage.failed(exc)  # logs an outage once; the next trim is the retry
                continue
            self._trim_outage.recovered()


def _by_collection(batch: list[Change]) -> dict[str, list[Change]]:
    out: dict[str, list[Change]] = {}
    for change in batch:
        out.setdefault(change.collection, []).append(change)
    return out
