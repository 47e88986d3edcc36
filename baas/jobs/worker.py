"""The job worker every server process runs: claims due jobs, runs their handlers, settles them.

Up to `concurrency` jobs run at once. The worker wakes on the queue's NOTIFY (a job committed),
when one of its jobs finishes, and every `poll_s` (jobs that were scheduled or backed off become
due without a notification). While jobs run it renews their leases; each poll also hands back
jobs whose worker died. On shutdown, jobs still running are given back to the queue. While the
database is down both loops back off and log the outage once (`baas.loops`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from itertools import count

from baas.db.pool import Database
from baas.jobs import queue
from baas.jobs.queue import Fail, Job, Retry
from baas.loops import Loop, unavailable

log = logging.getLogger("baas.jobs")

Handler = Callable[[Job], Awaitable[None]]
_ids = count(1)


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 8
    poll_s: float = 1.0
    lease_s: float = 60.0
    timeout_s: float = 900.0  # one run of one job, at most
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 3600.0
    shutdown_grace_s: float = 5.0


class Worker:
    def __init__(
        self, db: Database, handlers: Mapping[str, Handler], options: WorkerOptions
    ) -> None:
        self.db = db
        self.handlers = dict(handlers)
        self.options = options
        self.name = f"{socket.gethostname()}:{os.getpid()}:{next(_ids)}"
        self._running: dict[int, asyncio.Task[None]] = {}
        self._stopping = False
        self.claims = Loop("jobs worker", self._claim_pass, every_s=options.poll_s, log=log)
        self.leases = Loop("job leases", self._renew_pass, every_s=options.lease_s / 3, log=log)

    def start(self) -> None:
        self.claims.start()
        self.leases.start()

    def wake(self, _payload: str = "") -> None:
        self.claims.wake()

    @property
    def busy(self) -> int:
        return len(self._running)

    async def stop(self) -> None:
        """Stop claiming; let running jobs finish for a moment, then hand them back."""
        self._stopping = True
        await self.claims.stop()
        await self.leases.stop()
        if self._running:
            await asyncio.wait(set(self._running.values()), timeout=self.options.shutdown_grace_s)
        left = list(self._running)
        for task in list(self._running.values()):
            task.cancel()
        if left:
            with contextlib.suppress(Exception):
                await queue.release(self.db, self.name, left)

    async def _claim_pass(self) -> None:
        await queue.requeue_abandoned(self.db)
        while await self._claim_some():
            pass

    async def _claim_some(self) -> bool:
        """Claim as many jobs as there are free slots; True if every slot could be filled."""
        free = self.options.concurrency - len(self._running)
        if free <= 0:
            return False
        jobs = await queue.claim(self.db, self.name, self.options.lease_s, free)
        for job in jobs:
            task = asyncio.create_task(self._run(job), name=f"baas-job-{job.id}")
            self._running[job.id] = task
            task.add_done_callback(functools.partial(self._done, job.id))
        return len(jobs) == free

    def _done(self, job_id: int, _task: object = None) -> None:
        self._running.pop(job_id, None)
        if not self._stopping:
            self.claims.wake()  # a slot is free: there may be more work

    async def _run(self, job: Job) -> None:
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:  # e.g. a newer server version's job, during an upgrade
                raise Retry(f"no handler for job kind {job.kind!r} on this server")
            async with asyncio.timeout(self.options.timeout_s):
                await handler(job)
        except asyncio.CancelledError:
            raise
        except Retry as exc:
            await self._settle_failure(job, str(exc), exc.after_s)
            return
        except Fail as exc:
            await self._settle_failure(job, str(exc), None, retry=False)
            return
        except TimeoutError:
            await self._settle_failure(job, f"timed out after {self.options.timeout_s:g} s")
            return
        except Exception as exc:
            if unavailable(exc):  # the database (or storage) is down: one line, no traceback
                log.warning("job %d (%s) failed: %s", job.id, job.kind, exc)
            else:
                log.exception("job %d (%s) failed", job.id, job.kind)
            await self._settle_failure(job, f"{type(exc).__name__}: {exc}")
            return
        await self._safely(queue.finish(self.db, self.name, job.id))

    async def _settle_failure(
        self, job: Job, error: str, after_s: float | None = None, *, retry: bool = True
    ) -> None:
        o = self.options
        delay = None
        if retry:
            delay = (
                after_s
                if after_s is not None
                else queue.backoff_s(job.attempts, o.backoff_base_s, o.backoff_cap_s)
            )
        if job.last_attempt or not retry:
            log.warning("job %d (%s) is dead: %s", job.id, job.kind, error)
        await self._safely(queue.fail(self.db, self.name, job, error, delay))

    async def _safely(self, settle: Awaitable[None]) -> None:
        # If the outcome cannot be written, the lease runs out and the job runs again: at least
        # once, never lost.
        try:
            await settle
        except Exception as exc:
            if not unavailable(exc):
                log.exception("could not record a job's outcome; it will run again")
            else:
                log.warning("could not record a job's outcome (%s); it will run again", exc)

    async def _renew_pass(self) -> None:
        if self._running:
            await queue.renew(self.db, self.name, list(self._running), self.options.lease_s)
