"""Fan-out: a batch of changes of one collection -> the entries each subscriber may see.

Subscribers are grouped by everything that decides their entries: the record they follow (if
any), their spec, their `fields`, and their `auth.id` when their conditions read it. A group's
verdicts come from ONE query for all groups and all changes of the batch (none for free
groups), and its entries are rendered once; each subscriber then gets one byte string per batch
(its entries joined, each opening with the subscriber's own `{"sub":...,`), the same object for
every member of a group whose subscription ids match. Private fields of a users record (see
`baas.records.privacy`) are left out of the entries of everyone but that account and admins.
The loops over subscribers give the event loop a turn every few milliseconds (`slices`).
"""

from __future__ import annotations

from typing import Any

from baas.context import AppContext
from baas.errors import ApiError
from baas.http.responses import dumps
from baas.realtime import access, changelog, slices
from baas.realtime.access import Judged, Spec, Verdict
from baas.realtime.changelog import Change
from baas.realtime.connection import Subscription
from baas.records import privacy
from baas.schema.models import Collection

_FREE = object()  # the `who` of groups that need no verdict
_EVERYTHING = object()  # the `viewer` of groups that see private fields of every account
MAX_PAIRS = 250_000  # (subscriber, change) pairs judged by one statement
Key = tuple[str | None, Spec, tuple[str, ...] | None, Any, Any]


class Failed(Exception):
    """A spec's filter failed at run time (a client mistake the compiler could not see)."""

    def __init__(self, spec: Spec, message: str) -> None:
        super().__init__(message)
        self.spec = spec
        self.message = message


async def entries(
    ctx: AppContext, c: Collection, changes: list[Change], subs: list[Subscription]
) -> list[tuple[Subscription, bytes]]:
    """What each subscriber gets from `changes` (in order), one query at most."""
    groups: dict[Key, list[Subscription]] = {}
    private = privacy.private_fields(c)
    changed = {ch.record_id for ch in changes} if private else set()
    turn = slices.Slice()
    asks: dict[int, bool | None] = {}  # per spec object: needs no verdict, or reads auth.id
    for sub in subs:
        if turn.spent():
            await turn.pause()
        spec = sub.spec
        reads = asks.get(id(spec), _FREE)
        if reads is _FREE:
            reads = asks[id(spec)] = None if spec.free(c) else access.reads_auth(ctx, c, spec)
        if reads is None:
            who: Any = _FREE
        else:
            who = _auth(sub) if reads else None
        viewer = _viewer(sub, private, changed)
        groups.setdefault((sub.record, spec, sub.fields, who, viewer), []).append(sub)
    judged = await _judged(ctx, c, changes, [k for k in groups if k[3] is not _FREE], turn)
    shapes = [_Shapes(c, ch, ctx) for ch in changes]
    tails_of: dict[Any, list[bytes]] = {}  # groups that see the same get the same tails
    out = []
    for key, members in groups.items():
        if turn.spent():
            await turn.pause()
        record, _spec, fields, who, viewer = key
        seen = _FREE if who is _FREE else judged.get(key)
        if seen is None:
            continue
        tails = tails_of.get((record, fields, seen, viewer))
        if tails is None:
            if seen is _FREE:
                pairs = [(k, _plain(ch)) for k, ch in enumerate(changes)]
            else:
                pairs = access.verdicts(seen)
            tails = tails_of[(record, fields, seen, viewer)] = _tails(
                shapes, pairs, record, fields, viewer, private
            )
        if tails:
            joined: dict[bytes, bytes] = {}  # one entry object per head, shared (wire.Flusher)
            for sub in members:
                if turn.spent():
                    await turn.pause()
                entry = joined.get(sub.head)
                if entry is None:
                    head = sub.head
                    entry = joined[head] = head + (b"," + head).join(tails)
                out.append((sub, entry))
    return out


def _viewer(sub: Subscription, private: tuple[str, ...], changed: set[str]) -> Any:
    """Whose private fields the subscriber sees: every account's (admins, or nothing private),
    its own account's when one of the changes is to it, or nobody's (None)."""
    if not private or sub.spec.admin:
        return _EVERYTHING
    me = _auth(sub)
    return me if me in changed else None


def _tails(
    shapes: list[_Shapes],
    pairs: list[tuple[int, Verdict]],
    record: str | None,
    fields: tuple[str, ...] | None,
    viewer: Any,
    private: tuple[str, ...],
) -> list[bytes]:
    tails = []
    for k, verdict in pairs:
        if record is None or shapes[k].change.record_id == record:
            own = viewer is _EVERYTHING or shapes[k].change.record_id == viewer
            tail = shapes[k].tail(verdict, fields, () if own else private)
            if tail is not None:
                tails.append(tail)
    return tails


async def _judged(
    ctx: AppContext, c: Collection, changes: list[Change], keys: list[Key], turn: slices.Slice
) -> dict[Key, tuple[Judged, ...]]:
    """For each key that may see something of the changes, its verdicts as the statement gives
    them (decoded by `access.verdicts`; equal values mean equal verdicts)."""
    if not keys:
        return {}
    index: dict[Spec, int] = {}
    numbers: dict[tuple[Any, int], int] = {}  # (auth id, spec index) -> subscriber number
    number_of = []  # each key's subscriber number
    for key in keys:
        if turn.spent():
            await turn.pause()
        spec_no = index.setdefault(key[1], len(index))
        number_of.append(numbers.setdefault((key[3], spec_no), len(numbers)))
    specs, subscribers = tuple(index), list(numbers)
    rows = [(ch.new_json, ch.old_json) for ch in changes]
    step = max(1, MAX_PAIRS // len(subscribers))  # a bounded statement, whatever the load
    found: dict[int, list[Judged]] = {}
    for start in range(0, len(rows), step):
        chunk = await _judge(ctx, c, specs, subscribers, rows[start : start + step], start)
        turn.renew()
        for i, judged in chunk.items():
            found.setdefault(i, []).append(judged)
    out: dict[Key, tuple[Judged, ...]] = {}
    for key, number in zip(keys, number_of, strict=True):
        if turn.spent():
            await turn.pause()
        got = found.get(number)
        if got is not None:
            out[key] = tuple(got)
    return out


async def _judge(
    ctx: AppContext,
    c: Collection,
    specs: tuple[Spec, ...],
    subscribers: list[tuple[Any, int]],
    rows: list[tuple[str | None, str | None]],
    base: int,
) -> dict[int, Judged]:
    try:
        return await access.judge(ctx, c, specs, subscribers, rows, base)
    except ApiError as exc:
        if exc.status >= 500:
            raise
        for spec in specs:  # which spec was it? its subscriptions end, the others go on
            try:
                await access.judge(ctx, c, (spec,), [(None, 0)], rows, base)
            except ApiError as failure:
                if failure.status >= 500:
                    raise
                raise Failed(spec, failure.message) from None
        raise


def _plain(change: Change) -> Verdict:
    return Verdict(change.new_json is not None, change.old_json is not None, None)


def _auth(sub: Subscription) -> str | None:
    identity = sub.conn.identity
    return identity.id if identity.kind == "user" else None


class _Shapes:
    """The entries of one change, rendered once per distinct shape (action, fields, expand)."""

    def __init__(self, c: Collection, change: Change, ctx: AppContext) -> None:
        self.c = c
        self.change = change
        self.ctx = ctx
        self._tails: dict[Any, bytes] = {}
        self._records: dict[str, dict[str, Any]] = {}

    def tail(
        self, verdict: Verdict, fields: tuple[str, ...] | None, hide: tuple[str, ...]
    ) -> bytes | None:
        """The entry without its head (`{"sub":...,`), or None when there is nothing to send;
        without the fields `hide` names (private fields of someone else's account)."""
        action = _action(self.change.op, verdict)
        if action is None:
            return None
        side = "old" if action in ("delete", "leave") else "new"
        expand = verdict.expand if side == "new" else None
        key = (action, fields, None if expand is None else dumps(expand), hide)
        tail = self._tails.get(key)
        if tail is None:
            record = self._record(side)
            if hide:
                record = {k: v for k, v in record.items() if k not in hide}
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
            tail = self._tails[key] = dumps(body)[1:]  # the head opens the object
        return tail

    def _record(self, side: str) -> dict[str, Any]:
        record = self._records.get(side)
        if record is None:
            row = self.change.row(side)
            assert row is not None
            decode = self.ctx.schema.memo(
                ("realtime-decoder", self.c.name), lambda: changelog.decoder(self.c)
            )
            record = self._records[side] = decode(row)
        return record


def _action(op: str, v: Verdict) -> str | None:
    if op == "create":
        return "create" if v.new else None
    if op == "delete":
        return "delete" if v.old else None
    if v.new:
        return "update" if v.old else "enter"
    return "leave" if v.old else None
