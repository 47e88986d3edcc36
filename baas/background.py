"""What each server process runs in the background: the job worker, with a handler for every job
kind, and cron. The one place the generic queue meets the features that use it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from baas.context import AppContext
from baas.jobs import queue
from baas.jobs.cron import Cron, CronEntry
from baas.jobs.queue import Job
from baas.jobs.worker import Worker, WorkerOptions
from baas.push import delivery, triggers
from baas.push.senders import Senders
from baas.push.service import DELIVER, FANOUT

SWEEP = "jobs.sweep"
KEEP_DONE_S = 7 * 86_400
KEEP_DEAD_S = 30 * 86_400
CRON = (CronEntry("jobs.sweep", "17 * * * *", SWEEP),)


class Background:
    def __init__(self, ctx: AppContext) -> None:
        s = ctx.settings
        self.senders = Senders(s, ctx.runtime)
        deliverer = delivery.Deliverer(ctx, self.senders)
        handlers: dict[str, Callable[[Job], Awaitable[None]]] = {
            FANOUT: lambda job: delivery.fanout(ctx, job),
            DELIVER: deliverer.deliver,
            triggers.KIND: lambda job: triggers.run(ctx, job),
            SWEEP: lambda _job: _sweep(ctx),
        }
        options = WorkerOptions(
            concurrency=s.jobs_concurrency,
            poll_s=s.jobs_poll_s,
            lease_s=s.jobs_lease_s,
            backoff_base_s=s.jobs_backoff_base_s,
            backoff_cap_s=s.jobs_backoff_cap_s,
        )
        self.worker = Worker(ctx.db, handlers, options)
        self.cron = Cron(ctx.db, CRON)
        self.enabled = s.jobs_concurrency > 0

    async def start(self) -> None:
        if self.enabled:
            await self.cron.start()
            self.worker.start()

    def wake(self, _payload: str = "") -> None:
        self.worker.wake()

    async def stop(self) -> None:
        if self.enabled:
            await self.cron.stop()
            await self.worker.stop()
        await self.senders.close()


async def _sweep(ctx: AppContext) -> None:
    await queue.sweep(ctx.db, KEEP_DONE_S, KEEP_DEAD_S)
    await ctx.db.execute(
        "DELETE FROM baas.push_messages WHERE finished < now() - make_interval(secs => $1)",
        float(KEEP_DEAD_S),
    )
