"""The job queue's statements: enqueue (inside the caller's transaction), claim, finish, retry,
and what admins do with jobs (list, show, retry, cancel).

A job is a row of `baas.jobs` (`0006_jobs.sql`). Enqueueing is an INSERT on the caller's
connection, so a job exists if and only if the caller's transaction commits; this process's worker
is woken once it has (`baas.db.bells`: no NOTIFY inside the caller's transaction, which would
serialise its commit), and the other instances' workers find it on their next poll.
Handlers say how a run ended by returning (done) or raising `Retry`
(again later, maybe at a time the provider asked for) or `Fail` (dead at once); any other
exception is retried with backoff until the job's attempts run out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from baas.db import bells
from baas.db.pool import Executor, Record
from baas.errors import Conflict, InvalidParameter, NotFound

CHANNEL = bells.JOBS
STATUSES = ("queued", "running", "done", "dead", "cancelled")
DEFAULT_MAX_ATTEMPTS = 10
MAX_ERROR_LENGTH = 2000
MAX_LIST = 500


class Retry(Exception):
    """Run the job again later: after `after_s` seconds if given (a provider's Retry-After),
    otherwise after the queue's backoff."""

    def __init__(self, reason: str, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.after_s = after_s


class Fail(Exception):
    """The job cannot succeed (bad payload, a permanent provider answer): dead at once."""


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int  # including this run
    max_attempts: int
    created: datetime

    @property
    def last_attempt(self) -> bool:
        return self.attempts >= self.max_attempts


def backoff_s(attempts: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with jitter: about base * 2^(n-1), between half and all of it, capped
    (jitter spreads the retries of jobs that failed together, such as a provider outage)."""
    ceiling = min(cap_s, base_s * 2 ** min(max(attempts - 1, 0), 30))
    return random.uniform(ceiling / 2, ceiling)


async def enqueue(
    tx: Executor,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    run_at: datetime | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    key: str | None = None,
) -> int | None:
    """Add a job on `tx` (commits with it). With `key`, nothing is added while an unfinished job
    has the same key: None then."""
    job_id: int | None = await tx.fetchval(
        "INSERT INTO baas.jobs (kind, payload, run_at, max_attempts, key)"
        " VALUES ($1, $2, coalesce($3, now()), $4, $5)"
        " ON CONFLICT (key) WHERE status IN ('queued', 'running') DO NOTHING RETURNING id",
        kind,
        payload or {},
        run_at,
        max_attempts,
        key,
    )
    tx.ring(CHANNEL)  # after commit
    return job_id


_CLAIM = """
UPDATE baas.jobs j
   SET status = 'running', attempts = j.attempts + 1, locked_by = $1,
       locked_until = now() + make_interval(secs => $2), updated = now()
  FROM (SELECT id FROM baas.jobs WHERE status = 'queued' AND run_at <= now()
         ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) due
 WHERE j.id = due.id
RETURNING j.id, j.kind, j.payload, j.attempts, j.max_attempts, j.created
"""


async def claim(db: Executor, worker: str, lease_s: float, limit: int) -> list[Job]:
    """Take up to `limit` due jobs for `worker`, leased for `lease_s` seconds."""
    rows = await db.fetch(_CLAIM, worker, lease_s, limit)
    return [Job(r["id"], r["kind"], r["payload"], r[3], r[4], r["created"]) for r in rows]


async def requeue_abandoned(db: Executor) -> int:
    """Jobs whose worker stopped renewing their lease (it crashed or lost the database) run
    again; one whose attempts are used up is dead."""
    rows = await db.fetch(
        "UPDATE baas.jobs SET updated = now(), locked_by = NULL, locked_until = NULL,"
        " last_error = 'the worker running it stopped (crash or lost connection)',"
        " status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,"
        " finished = CASE WHEN attempts >= max_attempts THEN now() END, run_at = now()"
        " WHERE status = 'running' AND locked_until < now() RETURNING id"
    )
    return len(rows)


async def renew(db: Executor, worker: str, ids: list[int], lease_s: float) -> None:
    await db.execute(
        "UPDATE baas.jobs SET locked_until = now() + make_interval(secs => $3)"
        " WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND status = 'running'",
        ids,
        worker,
        lease_s,
    )


async def finish(db: Executor, worker: str, job_id: int) -> None:
    await _settle(db, worker, job_id, "done", None, None)


async def fail(db: Executor, worker: str, job: Job, error: str, retry_in_s: float | None) -> None:
    """A failed run: queued again after `retry_in_s`, or dead (None, or attempts used up)."""
    if retry_in_s is None or job.last_attempt:
        await _settle(db, worker, job.id, "dead", error, None)
    else:
        await _settle(db, worker, job.id, "queued", error, retry_in_s)


async def release(db: Executor, worker: str, ids: list[int]) -> None:
    """Give back jobs interrupted by a shutdown: due again at once, the run not counted."""
    await db.execute(
        "UPDATE baas.jobs SET status = 'queued', attempts = greatest(attempts - 1, 0),"
        " locked_by = NULL, locked_until = NULL, run_at = now(), updated = now()"
        " WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND status = 'running'",
        ids,
        worker,
    )
    await db.execute("SELECT pg_notify($1, '')", CHANNEL)


async def _settle(
    db: Executor, worker: str, job_id: int, status: str, error: str | None, delay_s: float | None
) -> None:
    # Guarded by the lease holder: a job taken over after a lost lease is not overwritten.
    await db.execute(
        "UPDATE baas.jobs SET status = $3, last_error = $4, locked_by = NULL,"
        " locked_until = NULL, updated = now(),"
        " finished = CASE WHEN $3 IN ('done', 'dead') THEN now() END,"
        " run_at = CASE WHEN $5::float8 IS NULL THEN run_at"
        " ELSE now() + make_interval(secs => $5::float8) END"
        " WHERE id = $1 AND locked_by = $2 AND status = 'running'",
        job_id,
        worker,
        status,
        error[:MAX_ERROR_LENGTH] if error else None,
        delay_s,
    )


async def sweep(db: Executor, keep_done_s: float, keep_dead_s: float) -> int:
    """Forget finished jobs: done and cancelled ones after `keep_done_s`, dead ones later."""
    rows = await db.fetch(
        "DELETE FROM baas.jobs WHERE finished IS NOT NULL AND ("
        " (status IN ('done', 'cancelled') AND finished < now() - make_interval(secs => $1))"
        " OR (status = 'dead' AND finished < now() - make_interval(secs => $2))) RETURNING id",
        keep_done_s,
        keep_dead_s,
    )
    return len(rows)


# What admins see and do (the admin API and `baas jobs`).

_COLUMNS = (
    "id, kind, status, payload, run_at, attempts, max_attempts, locked_by, locked_until,"
    " last_error, key, created, updated, finished"
)


def describe(row: Record) -> dict[str, Any]:
    return dict(row.items())


async def list_jobs(
    db: Executor,
    *,
    status: str | None = None,
    kind: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest jobs first (`before`: ids below it, the next page)."""
    if status is not None and status not in STATUSES:
        raise InvalidParameter("status must be one of: " + ", ".join(STATUSES))
    if not 1 <= limit <= MAX_LIST:
        raise InvalidParameter(f"limit must be from 1 to {MAX_LIST}")
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM baas.jobs WHERE ($1::text IS NULL OR status = $1)"
        " AND ($2::text IS NULL OR kind = $2) AND ($3::bigint IS NULL OR id < $3)"
        " ORDER BY id DESC LIMIT $4",
        status,
        kind,
        before,
        limit,
    )
    return [describe(r) for r in rows]


async def counts(db: Executor) -> dict[str, int]:
    rows = await db.fetch("SELECT status, count(*) AS n FROM baas.jobs GROUP BY status")
    found = {r["status"]: r["n"] for r in rows}
    return {s: found.get(s, 0) for s in STATUSES}


async def get_job(db: Executor, job_id: int) -> dict[str, Any]:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM baas.jobs WHERE id = $1", job_id)
    if row is None:
        raise NotFound(f"no job {job_id}", code="job_not_found")
    return describe(row)


async def retry_job(db: Executor, job_id: int) -> dict[str, Any]:
    """Run a dead or cancelled job again now, with its attempts counted afresh."""
    row = await db.fetchrow(
        "UPDATE baas.jobs SET status = 'queued', attempts = 0, run_at = now(), finished = NULL,"
        " updated = now() WHERE id = $1 AND status IN ('dead', 'cancelled')"
        f" RETURNING {_COLUMNS}",
        job_id,
    )
    if row is None:
        await _explain(db, job_id, "only dead or cancelled jobs can be retried")
    await db.execute("SELECT pg_notify($1, '')", CHANNEL)
    return describe(row)  # type: ignore[arg-type]


async def cancel_job(db: Executor, job_id: int) -> dict[str, Any]:
    """Cancel a job that has not started (or is waiting to be retried)."""
    row = await db.fetchrow(
        "UPDATE baas.jobs SET status = 'cancelled', finished = now(), updated = now()"
        f" WHERE id = $1 AND status IN ('queued', 'dead') RETURNING {_COLUMNS}",
        job_id,
    )
    if row is None:
        await _explain(db, job_id, "only queued or dead jobs can be cancelled")
    return describe(row)  # type: ignore[arg-type]


async def _explain(db: Executor, job_id: int, rule: str) -> None:
    status = await db.fetchval("SELECT status FROM baas.jobs WHERE id = $1", job_id)
    if status is None:
        raise NotFound(f"no job {job_id}", code="job_not_found")
    raise Conflict(f"job {job_id} is {status}: {rule}", code="job_state")
