"""The realtime hub of one process: its connections and subscriptions, and the change pump.

The pump reads the change log after each NOTIFY (and every few seconds regardless), in order,
and hands each change to the subscribers it concerns: free ones at once, the rest after one
query that judges them all (`access.judge`). Entries are rendered once per distinct shape and
queued on each connection; nothing here waits for a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from baas.context import AppContext
from baas.errors import ApiError
from baas.http.responses import dumps
from baas.realtime import access, changelog
from baas.realtime.access import Spec, Verdict
from baas.realtime.changelog import Change
from baas.realtime.connection import Connection, Subscription
from baas.realtime.protocol import CLOSE_IDLE
from baas.schema.models import Collection

log = logging.getLogger("baas.realtime")
POLL_S = 5.0  # read the log this often even without a NOTIFY
TICK_S = 1.0
TRIM_EVERY_S = 60.0
RETRY_S = 1.0
JUDGE_CHUNK = 500  # changes judged per statement during a replay


class Hub:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.position = 0  # the last change handed out (or skipped: nobody was subscribed)
        self.connections: set[Connection] = set()
        self._collections: dict[str, set[Subscription]] = defaultdict(set)
        self._records: dict[tuple[str, str], set[Subscription]] = defaultdict(set)
        self._ips: Counter[str] = Counter()
        self._users: Counter[str] = Counter()
        self._added = 0  # subscriptions ever added (the pump checks it around an await)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._schema_version = ctx.schema.version
        self.on_tick: list[Any] = []  # callbacks(now) run every tick (token expiry, presence)

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

    def wake(self, _payload: str = "") -> None:
        self._wake.set()

    async def on_notify(self, payload: str) -> None:
        self.wake(payload)

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

    def add(self, sub: Subscription) -> int:
        """Register a subscription; returns the change id it starts after."""
        sub.conn.subs[sub.id] = sub
        if sub.record is None:
            self._collections[sub.collection].add(sub)
        else:
            self._records[(sub.collection, sub.record)].add(sub)
        self._added += 1
        return self.position

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

    def _candidates(self, change: Change) -> list[Subscription]:
        subs = list(self._collections.get(change.collection, ()))
        subs += self._records.get((change.collection, change.record_id), ())
        return subs

    # -- the pump ---------------------------------------------------------------------------------

    async def _pump(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            self._wake.clear()
            try:
                await self._drain()
            except Exception:
                log.exception("reading the change log failed; retrying")
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def _drain(self) -> None:
        db = self.ctx.db
        while True:
            if not self._collections and not self._records:
                added = self._added
                last = await changelog.high_water(db)
                if self._added == added:  # nobody subscribed meanwhile: nothing to send
                    self.position = max(self.position, last)
                    return
            batch = await changelog.next_changes(db, self.position)
            for change in batch:
                await self._dispatch(change)
            if len(batch) < changelog.BATCH:
                return

    async def _dispatch(self, change: Change) -> None:
        previous, self.position = self.position, change.pos
        c = self.ctx.schema.collection(change.collection)
        subs = self._candidates(change) if c is not None else []
        if not subs or c is None:
            return
        # Free subscribers are served at once, before any await: the set is as of this change.
        shapes = Shapes(c, change, self.ctx)
        paid = []
        tails: dict[tuple[str, ...] | None, bytes] = {}
        for sub in subs:  # the hot loop: every subscriber of a public collection
            if not sub.spec.free(c):
                paid.append(sub)
                continue
            tail = tails.get(sub.fields)
            if tail is None:
                side = "old" if change.op == "delete" else "new"
                tail = tails[sub.fields] = shapes.tail(change.op, side, sub.fields, None)
            sub.deliver(sub.head + tail)
        if not paid:
            return
        try:
            verdicts = await self._judge_live(c, change, paid)
        except BaseException:
            self.position = previous  # read it again
            raise
        for sub in paid:
            verdict = verdicts.get(sub)
            if verdict is not None and sub.conn.subs.get(sub.id) is sub:
                shapes.deliver(sub, verdict)

    async def _judge_live(
        self, c: Collection, change: Change, subs: list[Subscription]
    ) -> dict[Subscription, Verdict]:
        """One query for every subscriber that needs one; a spec whose filter fails at run
        time (a client mistake the compiler could not see) ends only its own subscriptions."""
        specs = tuple(dict.fromkeys(s.spec for s in subs))
        try:
            return await self._judge(c, specs, subs, [change])
        except ApiError as exc:
            if exc.status >= 500:
                raise
        verdicts: dict[Subscription, Verdict] = {}
        for spec in specs:
            mine = [s for s in subs if s.spec == spec]
            try:
                verdicts.update(await self._judge(c, (spec,), mine, [change]))
            except ApiError as exc:
                if exc.status >= 500:
                    raise
                for sub in mine:
                    self.end(sub, "filter_failed", exc.message)
        return verdicts

    async def _judge(
        self,
        c: Collection,
        specs: tuple[Spec, ...],
        subs: list[Subscription],
        changes: list[Change],
    ) -> dict[Subscription, Verdict]:
        index = {spec: i for i, spec in enumerate(specs)}
        keys = list(dict.fromkeys((_auth(s), index[s.spec]) for s in subs))
        position = {key: i for i, key in enumerate(keys)}
        rows = [(ch.new_json, ch.old_json) for ch in changes]
        found = await access.judge(self.ctx, c, specs, keys, rows)
        out: dict[Subscription, Verdict] = {}
        for sub in subs:
            verdict = found.get((position[(_auth(sub), index[sub.spec])], 0))
            if verdict is not None:
                out[sub] = verdict
        return out

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
            for start in range(0, len(changes), JUDGE_CHUNK):
                await self._replay_chunk(c, sub, changes[start : start + JUDGE_CHUNK])
        held, sub.buffer = sub.buffer or [], None
        for entry in held:
            sub.conn.event(entry)

    async def _replay_chunk(self, c: Collection, sub: Subscription, changes: list[Change]) -> None:
        if sub.spec.free(c):
            verdicts = {
                k: Verdict(ch.new_json is not None, ch.old_json is not None, None)
                for k, ch in enumerate(changes)
            }
        else:
            rows = [(ch.new_json, ch.old_json) for ch in changes]
            found = await access.judge(self.ctx, c, (sub.spec,), [(_auth(sub), 0)], rows)
            verdicts = {k: v for (_, k), v in found.items()}
        conn = sub.conn
        for k, change in enumerate(changes):
            verdict = verdicts.get(k)
            if verdict is not None:
                entry = Shapes(c, change, self.ctx).entry(sub, verdict)
                if entry is not None:
                    conn.event(entry)

    # -- timers -----------------------------------------------------------------------------------

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.tick(time.monotonic())
            except Exception:
                log.exception("realtime timers failed")

    def tick(self, now: float) -> None:
        settings = self.ctx.settings
        if self.ctx.schema.version != self._schema_version:
            self._schema_version = self.ctx.schema.version
            for sub in list(subscribers(self)):
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
            except Exception:
                log.exception("trimming the change log failed")


def _auth(sub: Subscription) -> str | None:
    identity = sub.conn.identity
    return identity.id if identity.kind == "user" else None


class Shapes:
    """The entries of one change, rendered once per distinct shape (action, fields, expand)."""

    def __init__(self, c: Collection, change: Change, ctx: AppContext) -> None:
        self.c = c
        self.change = change
        self.ctx = ctx
        self._tails: dict[Any, bytes] = {}
        self._records: dict[str, dict[str, Any] | None] = {}

    def deliver(self, sub: Subscription, verdict: Verdict) -> None:
        entry = self.entry(sub, verdict)
        if entry is not None:
            sub.deliver(entry)

    def entry(self, sub: Subscription, verdict: Verdict) -> bytes | None:
        action = _action(self.change.op, verdict)
        if action is None:
            return None
        side = "old" if action in ("delete", "leave") else "new"
        expand = verdict.expand if side == "new" else None
        key = (action, sub.fields, None if expand is None else dumps(expand))
        tail = self._tails.get(key)
        if tail is None:
            tail = self._tails[key] = self.tail(action, side, sub.fields, expand)
        return sub.head + tail

    def tail(self, action: str, side: str, fields: tuple[str, ...] | None, expand: Any) -> bytes:
        record = self._record(side)
        if fields is not None:
            record = {k: record[k] for k in fields if k in record}
        if expand:
            record = {**record, "expand": expand}
        body = {
            "change_id": self.change.pos,
            "action": action,
            "collection": self.c.name,
            "record": record,
        }
        return dumps(body)[1:]  # the entry's head (`{"sub":...,`) opens the object

    def _record(self, side: str) -> dict[str, Any]:
        if side not in self._records:
            row = self.change.row(side)
            decode = self.ctx.schema.memo(
                ("realtime-decoder", self.c.name), lambda: changelog.decoder(self.c)
            )
            self._records[side] = None if row is None else decode(row)
        record = self._records[side]
        assert record is not None
        return record


def _action(op: str, v: Verdict) -> str | None:
    if op == "create":
        return "create" if v.new else None
    if op == "delete":
        return "delete" if v.old else None
    if v.new:
        return "update" if v.old else "enter"
    return "leave" if v.old else None


def subscribers(hub: Hub) -> Iterable[Subscription]:
    for group in (*hub._collections.values(), *hub._records.values()):
        yield from group
