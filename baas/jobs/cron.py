"""Cron: jobs enqueued on a five-field schedule (UTC), once per tick across all instances.

Entries are declared in code (`CronEntry`) and written to `baas.cron` at start-up. Each process
ticks; a tick claims the due entries with FOR UPDATE SKIP LOCKED, enqueues each entry's job (at
most one unfinished job per entry) and moves `next_run` to the next time after now, all in one
transaction: however many instances tick, each due time runs once, and a tick missed while every
instance was down runs once when one comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from baas.db.pool import Database
from baas.jobs import queue
from baas.loops import Loop

log = logging.getLogger("baas.jobs")
TICK_S = 5.0  # minute resolution: a tick this often is at most a few seconds late


class CronError(ValueError):
    pass


def check_schedule(schedule: str) -> str:
    """A valid five-field expression ('*/5 * * * *'), or CronError saying what is wrong."""
    fields = schedule.split()
    if len(fields) != 5:
        raise CronError("a schedule has five fields: minute hour day-of-month month day-of-week")
    if not croniter.is_valid(" ".join(fields)):
        raise CronError(f"not a valid cron schedule: {schedule!r}")
    return " ".join(fields)


def next_time(schedule: str, after: datetime) -> datetime:
    result: datetime = croniter(schedule, after).get_next(datetime)
    return result


@dataclass(frozen=True)
class CronEntry:
    name: str
    schedule: str
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", check_schedule(self.schedule))


async def sync(db: Database, entries: Sequence[CronEntry]) -> None:
    """Write the entries; an unchanged schedule keeps its next run."""
    now = datetime.now(UTC)
    for e in entries:
        await db.execute(
            "INSERT INTO baas.cron (name, schedule, kind, payload, next_run)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET"
            " kind = excluded.kind, payload = excluded.payload, schedule = excluded.schedule,"
            " next_run = CASE WHEN baas.cron.schedule = excluded.schedule"
            " THEN baas.cron.next_run ELSE excluded.next_run END",
            e.name,
            e.schedule,
            e.kind,
            e.payload,
            next_time(e.schedule, now),
        )


async def tick(db: Database, names: Sequence[str]) -> list[str]:
    """Enqueue the due entries among `names` (those this process knows); the names run."""
    ran = []
    async with db.transaction() as tx:
        # `now` is the database's: due is judged by its clock, so the next run must be too
        # (by this process's clock, if behind, the next run could be due already).
        rows = await tx.fetch(
            "SELECT name, schedule, kind, payload, now() AS now FROM baas.cron"
            " WHERE name = ANY($1::text[]) AND next_run <= now() FOR UPDATE SKIP LOCKED",
            list(names),
        )
        for r in rows:
            job_id = await queue.enqueue(tx, r["kind"], r["payload"], key=f"cron:{r['name']}")
            await tx.execute(
                "UPDATE baas.cron SET next_run = $2, last_run = now(),"
                " last_job = coalesce($3, last_job) WHERE name = $1",
                r["name"],
                next_time(r["schedule"], r["now"]),
                job_id,
            )
            ran.append(r["name"])
    return ran


class Cron:
    """Ticks while the process runs."""

    def __init__(
        self, db: Database, entries: Sequence[CronEntry], tick_s: float | None = None
    ) -> None:
        self.db = db
        self.entries = list(entries)
        self.tick_s = TICK_S if tick_s is None else tick_s
        self.loop = Loop("cron", self._tick, every_s=self.tick_s, log=log, first_now=True)

    async def start(self) -> None:
        await sync(self.db, self.entries)
        self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    async def _tick(self) -> None:
        await tick(self.db, [e.name for e in self.entries])
