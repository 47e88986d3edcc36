"""The job queue against a real PostgreSQL: transactional enqueue, workers claiming with SKIP
LOCKED, retries with backoff, dead jobs, scheduled jobs, crashed workers, shutdown, cron."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from baas.db.pool import Database, PoolOptions
from baas.jobs import cron, queue
from baas.jobs.queue import Fail, Job, Retry
from baas.jobs.worker import Worker, WorkerOptions

FAST = WorkerOptions(concurrency=4, poll_s=0.05, lease_s=30, backoff_base_s=0.05, backoff_cap_s=0.2)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, PoolOptions(min_size=1, max_size=6))
    yield database
    await database.close()


async def status_of(db: Database, job_id: int) -> dict[str, Any]:
    return await queue.get_job(db, job_id)


async def wait_for(check: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.02)


async def wait_status(db: Database, job_id: int, status: str) -> dict[str, Any]:
    async def done() -> bool:
        return (await status_of(db, job_id))["status"] == status

    await wait_for(done)
    return await status_of(db, job_id)


async def test_a_job_exists_only_if_its_transaction_commits(db: Database) -> None:
    async def failing_write() -> None:
        async with db.transaction() as tx:
            await queue.enqueue(tx, "k", {"n": 1})
            raise RuntimeError("the write failed")

    with pytest.raises(RuntimeError):
        await failing_write()
    assert await queue.list_jobs(db) == []
    async with db.transaction() as tx:
        job_id = await queue.enqueue(tx, "k", {"n": 2})
    job = await status_of(db, job_id)  # type: ignore[arg-type]
    assert (job["status"], job["payload"], job["attempts"]) == ("queued", {"n": 2}, 0)


async def test_workers_run_each_job_once_across_instances(db: Database) -> None:
    ran: list[int] = []

    async def handler(job: Job) -> None:
        await asyncio.sleep(0.005)
        ran.append(job.payload["n"])

    workers = [Worker(db, {"count": handler}, FAST) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        async with db.transaction() as tx:
            for n in range(60):
                await queue.enqueue(tx, "count", {"n": n})
        for w in workers:
            w.wake()

        async def all_done() -> bool:
            return (await queue.counts(db))["done"] == 60

        await wait_for(all_done)
    finally:
        for w in workers:
            await w.stop()
    assert sorted(ran) == list(range(60))
    jobs = await queue.list_jobs(db, kind="count", limit=100)
    assert [j["attempts"] for j in jobs] == [1] * 60  # claimed once each, by one worker


async def test_failures_back_off_then_the_job_is_kept_dead_with_its_error(db: Database) -> None:
    runs: list[datetime] = []

    async def flaky(job: Job) -> None:
        runs.append(datetime.now(UTC))
        raise ConnectionError(f"provider down (run {job.attempts})")

    worker = Worker(db, {"flaky": flaky}, FAST)
    worker.start()
    try:
        job_id = await queue.enqueue(db, "flaky", {}, max_attempts=3)
        job = await wait_status(db, job_id, "dead")  # type: ignore[arg-type]
    finally:
        await worker.stop()
    assert job["attempts"] == 3 and len(runs) == 3
    assert job["last_error"] == "ConnectionError: provider down (run 3)"
    assert job["finished"] is not None
    assert runs[1] - runs[0] >= timedelta(seconds=0.02)  # backoff between attempts


async def test_retry_waits_as_long_as_asked_and_fail_is_dead_at_once(db: Database) -> None:
    seen: list[tuple[str, int]] = []

    async def handler(job: Job) -> None:
        seen.append((job.kind, job.attempts))
        if job.kind == "later" and job.attempts == 1:
            raise Retry("429 from the provider", after_s=0.6)
        if job.kind == "bad":
            raise Fail("the payload can never be sent")

    worker = Worker(db, {"later": handler, "bad": handler}, FAST)
    worker.start()
    try:
        later = await queue.enqueue(db, "later")
        bad = await queue.enqueue(db, "bad", max_attempts=5)
        dead = await wait_status(db, bad, "dead")  # type: ignore[arg-type]
        pending = await status_of(db, later)  # type: ignore[arg-type]
        assert pending["status"] == "queued" and pending["last_error"] == "429 from the provider"
        assert pending["run_at"] > datetime.now(UTC) + timedelta(seconds=0.2)
        done = await wait_status(db, later, "done")  # type: ignore[arg-type]
    finally:
        await worker.stop()
    assert dead["attempts"] == 1 and dead["last_error"] == "the payload can never be sent"
    assert done["attempts"] == 2


async def test_a_scheduled_job_runs_at_its_time(db: Database) -> None:
    ran_at: list[datetime] = []

    async def handler(_job: Job) -> None:
        ran_at.append(datetime.now(UTC))

    when = datetime.now(UTC) + timedelta(seconds=0.8)
    worker = Worker(db, {"s": handler}, FAST)
    worker.start()
    try:
        job_id = await queue.enqueue(db, "s", run_at=when)
        await wait_status(db, job_id, "done")  # type: ignore[arg-type]
    finally:
        await worker.stop()
    assert ran_at[0] >= when


async def test_a_job_whose_worker_died_runs_again_elsewhere(db: Database) -> None:
    job_id = await queue.enqueue(db, "work", {"x": 1})
    # A worker claims it and dies without a word: its lease (0.3 s) runs out.
    claimed = await queue.claim(db, "dead-host:1:1", 0.3, 10)
    assert [j.id for j in claimed] == [job_id]
    lease_end = (await status_of(db, job_id))["locked_until"]  # type: ignore[arg-type]
    done: list[tuple[int, datetime]] = []

    async def handler(job: Job) -> None:
        done.append((job.attempts, datetime.now(UTC)))

    survivor = Worker(db, {"work": handler}, FAST)
    survivor.start()
    try:
        job = await wait_status(db, job_id, "done")  # type: ignore[arg-type]
    finally:
        await survivor.stop()
    [(attempts, ran_at)] = done
    assert attempts == 2 and job["attempts"] == 2
    assert ran_at >= lease_end  # not before the dead worker's lease ran out


async def test_leases_are_renewed_while_a_long_job_runs(db: Database) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    runs = 0

    async def slow(_job: Job) -> None:
        nonlocal runs
        runs += 1
        started.set()
        await release.wait()

    options = WorkerOptions(concurrency=1, poll_s=0.05, lease_s=0.3)
    worker, other = Worker(db, {"slow": slow}, options), Worker(db, {"slow": slow}, options)
    worker.start()
    job_id = await queue.enqueue(db, "slow")
    await started.wait()
    first_lease = (await status_of(db, job_id))["locked_until"]  # type: ignore[arg-type]
    other.start()

    async def renewed_past_two_leases() -> bool:
        job = await status_of(db, job_id)  # type: ignore[arg-type]
        return job["locked_until"] >= first_lease + timedelta(seconds=0.6)  # type: ignore[no-any-return]

    try:
        # The first lease ran out long ago (other polled it several times): renewed, not taken.
        await wait_for(renewed_past_two_leases)
        job = await status_of(db, job_id)  # type: ignore[arg-type]
        assert runs == 1 and job["locked_by"] == worker.name and job["attempts"] == 1
        release.set()
        await wait_status(db, job_id, "done")  # type: ignore[arg-type]
    finally:
        await worker.stop()
        await other.stop()


async def test_shutdown_hands_running_jobs_back(db: Database) -> None:
    started = asyncio.Event()

    async def forever(_job: Job) -> None:
        started.set()
        await asyncio.sleep(3600)

    worker = Worker(db, {"forever": forever}, WorkerOptions(poll_s=0.05, shutdown_grace_s=0.1))
    worker.start()
    job_id = await queue.enqueue(db, "forever")
    await started.wait()
    await worker.stop()
    job = await status_of(db, job_id)  # type: ignore[arg-type]
    assert (job["status"], job["attempts"], job["locked_by"]) == ("queued", 0, None)


async def test_a_kind_without_a_handler_waits_for_a_server_that_has_one(db: Database) -> None:
    worker = Worker(db, {}, FAST)
    worker.start()
    try:
        job_id = await queue.enqueue(db, "from.the.future")

        async def retried() -> bool:
            return (await status_of(db, job_id))["attempts"] >= 1  # type: ignore[arg-type]

        await wait_for(retried)
    finally:
        await worker.stop()
    job = await status_of(db, job_id)  # type: ignore[arg-type]
    assert job["status"] == "queued" and "no handler" in job["last_error"]


async def test_a_key_allows_one_unfinished_job(db: Database) -> None:
    first = await queue.enqueue(db, "k", key="once")
    assert await queue.enqueue(db, "k", key="once") is None
    await db.execute("UPDATE baas.jobs SET status = 'done' WHERE id = $1", first)
    assert await queue.enqueue(db, "k", key="once") is not None


async def test_admins_retry_dead_jobs_and_cancel_queued_ones(db: Database) -> None:
    job_id = await queue.enqueue(db, "k", max_attempts=1)
    [job] = await queue.claim(db, "w", 30, 1)
    await queue.fail(db, "w", job, "boom", 1.0)  # the last attempt: dead
    assert (await status_of(db, job_id))["status"] == "dead"  # type: ignore[arg-type]
    again = await queue.retry_job(db, job_id)  # type: ignore[arg-type]
    assert (again["status"], again["attempts"], again["finished"]) == ("queued", 0, None)
    cancelled = await queue.cancel_job(db, job_id)  # type: ignore[arg-type]
    assert cancelled["status"] == "cancelled"
    with pytest.raises(queue.Conflict) as refused:
        await queue.cancel_job(db, job_id)  # type: ignore[arg-type]
    assert refused.value.code == "job_state"
    with pytest.raises(queue.NotFound):
        await queue.get_job(db, 999_999)
    assert [j["id"] for j in await queue.list_jobs(db, status="cancelled")] == [job_id]
    with pytest.raises(queue.InvalidParameter):
        await queue.list_jobs(db, status="sleeping")


async def test_sweep_forgets_old_finished_jobs_and_keeps_dead_ones_longer(db: Database) -> None:
    ids = [await queue.enqueue(db, "k") for _ in range(3)]
    await db.execute(
        "UPDATE baas.jobs SET status = CASE id WHEN $1 THEN 'done' WHEN $2 THEN 'dead'"
        " ELSE 'queued' END, finished = CASE WHEN id IN ($1, $2) THEN now() - interval '2 days' END",
        ids[0],
        ids[1],
    )
    assert await queue.sweep(db, keep_done_s=86_400, keep_dead_s=7 * 86_400) == 1
    assert sorted(j["id"] for j in await queue.list_jobs(db)) == ids[1:]


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    for attempts, ceiling in ((1, 5), (2, 10), (4, 40), (30, 3600)):
        for _ in range(50):
            value = queue.backoff_s(attempts, 5, 3600)
            assert ceiling / 2 <= value <= ceiling


async def test_cron_runs_each_tick_once_however_many_instances_tick(db: Database) -> None:
    entry = cron.CronEntry("digest", "* * * * *", "digest.send", {"to": "all"})
    await cron.sync(db, [entry])
    await db.execute("UPDATE baas.cron SET next_run = now() - interval '1 second'")
    results = await asyncio.gather(*(cron.tick(db, ["digest"]) for _ in range(4)))
    assert sorted(map(len, results)) == [0, 0, 0, 1]
    jobs = await queue.list_jobs(db, kind="digest.send")
    assert [(j["payload"], j["key"]) for j in jobs] == [({"to": "all"}, "cron:digest")]
    row = await db.fetchrow("SELECT next_run, last_run, last_job FROM baas.cron")
    assert row is not None and row["next_run"] > datetime.now(UTC)
    assert row["next_run"].second == 0 and row["last_job"] == jobs[0]["id"]
    assert await cron.tick(db, ["digest"]) == []  # not due again until the next minute


async def test_cron_runs_once_per_tick_when_this_clock_is_behind_the_database(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Due is judged by the database's clock, so the next run must be too: an instance whose
    clock is behind would otherwise set a next run that is already due, and run it again."""

    class Late(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) - timedelta(seconds=90)

    monkeypatch.setattr(cron, "datetime", Late)
    await cron.sync(db, [cron.CronEntry("digest", "* * * * *", "digest.send")])
    await db.execute("UPDATE baas.cron SET next_run = now() - interval '1 second'")
    assert await cron.tick(db, ["digest"]) == ["digest"]
    await db.execute("UPDATE baas.jobs SET status = 'done', finished = now()")
    assert await cron.tick(db, ["digest"]) == []  # not due again until the next minute
    assert await db.fetchval("SELECT next_run > now() FROM baas.cron")


async def test_cron_sync_keeps_the_next_run_of_an_unchanged_schedule(db: Database) -> None:
    await cron.sync(db, [cron.CronEntry("e", "0 3 * * *", "k")])
    await db.execute("UPDATE baas.cron SET next_run = '2030-01-01T03:00:00Z'")
    await cron.sync(db, [cron.CronEntry("e", "0 3 * * *", "k")])
    assert (await db.fetchval("SELECT next_run FROM baas.cron")).year == 2030
    await cron.sync(db, [cron.CronEntry("e", "30 4 * * 1", "k")])
    moved = await db.fetchval("SELECT next_run FROM baas.cron")
    assert moved.year < 2030 and (moved.hour, moved.minute, moved.weekday()) == (4, 30, 0)


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [("* * * *", "five fields"), ("61 * * * *", "not a valid"), ("* * * * * *", "five fields")],
)
def test_cron_schedules_are_checked(schedule: str, problem: str) -> None:
    with pytest.raises(cron.CronError, match=problem):
        cron.check_schedule(schedule)
