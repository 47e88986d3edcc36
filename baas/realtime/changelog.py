"""The change log: committed record changes in commit order, read in batches, replayed, trimmed.

Rows are appended by a trigger on every collection table (migration 0008) in the writing
transaction, tagged with its transaction id. Readers make ticks (`baas.change_tick`: the
transactions committed since the last tick) and read their events (`baas.read_changes`): per
transaction and record, one event, the record as committed against the row before; the public
change id is computed as it is read, the same for every reader and for replays. Events keep the
record as JSON text: it is decoded only when a subscriber needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from baas.db import bells
from baas.db.pool import Database
from baas.records.sql import output_columns
from baas.schema.models import Collection

BATCH = 100  # changes per read: a bounded fan-out burst
ACTIONS = {"I": "create", "U": "update", "D": "delete"}
CHANNEL = bells.CHANGES


@dataclass(slots=True)
class Change:
    pos: int
    collection: str
    record_id: str
    op: str  # create | update | delete
    new_json: str | None  # the row as committed (create, update)
    old_json: str | None  # the row before (update, delete)
    _decoded: dict[str, Any] = field(default_factory=dict)

    def row(self, side: str) -> dict[str, Any] | None:
        """The raw row, "new" or "old" (decoded once)."""
        if side not in self._decoded:
            text = self.new_json if side == "new" else self.old_json
            self._decoded[side] = None if text is None else orjson.loads(text)
        return self._decoded[side]  # type: ignore[no-any-return]


def _change(row: Any) -> Change:
    return Change(
        row["pos"], row["collection"], row["record_id"], ACTIONS[row["op"]], row["new"], row["old"]
    )


async def next_changes(db: Database, after: int, limit: int = BATCH) -> list[Change]:
    """Number what has committed since, then the changes after `after`, in order."""
    if await high_water(db) <= after:
        return []
    rows = await db.fetch("SELECT * FROM baas.read_changes($1, $2)", after, limit)
    return [_change(r) for r in rows]


async def high_water(db: Database) -> int:
    """The last change id given out (after numbering what has committed)."""
    return int(await db.fetchval("SELECT baas.change_tick()"))


async def replay(
    db: Database, collection: str, record_id: str | None, after: int, upto: int, limit: int
) -> list[Change] | None:
    """The changes of a collection (or one record) in (after, upto]; None when some of them
    are gone (older than the retention window), `after` is not an id of this log, or there
    are more than `limit`: the client must refetch."""
    state = await db.fetchrow("SELECT last_pos, trimmed_through FROM baas.change_state")
    assert state is not None
    if after < state["trimmed_through"] or after > state["last_pos"]:
        return None
    rows = await db.fetch(
        "SELECT * FROM baas.replay_changes($1, $2::uuid, $3, $4, $5)",
        collection,
        record_id,
        after,
        upto,
        limit + 1,
    )
    if len(rows) > limit:
        return None
    return [_change(r) for r in rows]


TRIM_TICKS = 1_000  # ticks dropped by one statement


async def trim(db: Database, retention_s: int) -> int:
    """Drop changes older than the retention window, oldest first, a tick at a time (so the
    ids of the changes kept never move); how many went. What is marked gone
    (`trimmed_through`) is the last change id dropped."""
    await high_water(db)  # number what committed (with no subscriber anywhere, nobody did)
    removed = 0
    while True:
        gone = int(
            await db.fetchval("SELECT baas.trim_changes($1, $2)", float(retention_s), TRIM_TICKS)
        )
        removed += gone
        if gone == 0:
            return removed


Decoder = Callable[[dict[str, Any]], dict[str, Any]]


def decoder(c: Collection) -> Decoder:
    """A logged row -> the record as REST returns it: visible fields in order, datetimes as
    datetimes (rendered in UTC with Z), numbers as floats."""
    names = output_columns(c)
    kinds = {f.name: f.type for f in c.fields}
    datetimes = frozenset(
        n for n in names if n in ("created", "updated") or kinds.get(n) == "datetime"
    )
    numbers = frozenset(n for n in names if kinds.get(n) == "number")

    def decode(row: dict[str, Any]) -> dict[str, Any]:
        record = {}
        for name in names:
            value = row.get(name)
            if value is not None:
                if name in datetimes:
                    value = _datetime(value)
                elif name in numbers:
                    value = [float(v) for v in value] if isinstance(value, list) else float(value)
            record[name] = value
        return record

    return decode


def _datetime(value: Any) -> Any:
    if isinstance(value, list):
        return [_datetime(v) for v in value]
    return datetime.fromisoformat(value).astimezone(UTC)
