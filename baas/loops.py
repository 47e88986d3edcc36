"""Background loops: named tasks that make a pass when due or woken, and ride out outages.

A pass that fails because something it needs is unavailable (a 503 `ApiError`: the database, file
storage) starts an outage: the loop logs one line, retries with exponential backoff up to a cap,
and logs one line when a pass succeeds again. A wake cuts a backoff short (the LISTEN listener
wakes the loops when the database is back). Any other failure is a bug: logged with its
traceback, and retried with the same backoff, so a failing loop never spins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from baas.errors import ApiError

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0

Pass = Callable[[], Awaitable[float | None]]  # returns seconds until the next pass, or None


def unavailable(exc: BaseException) -> bool:
    """True if `exc` says a dependency is down (retry later), not that the code is wrong."""
    return isinstance(exc, ApiError) and exc.status == 503


class Outage:
    """One loop's view of an outage: the delays between attempts and the two log lines."""

    def __init__(
        self,
        what: str,
        log: logging.Logger,
        *,
        base_s: float = BACKOFF_BASE_S,
        cap_s: float = BACKOFF_CAP_S,
    ) -> None:
        self.what = what
        self.log = log
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0
        self._since: float | None = None
        self._reason = ""

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> float:
        """Note a failed attempt; the seconds to wait before the next one."""
        self.failures += 1
        if not unavailable(exc):
            self.log.error("%s failed; retrying", self.what, exc_info=exc)
        elif self._since is None:
            assert isinstance(exc, ApiError)
            self._since = time.monotonic()
            self._reason = exc.code.replace("_", " ")
            self.log.warning(
                "%s: %s (%s); retrying with backoff (at most every %gs)",
                self.what,
                self._reason,
                exc.message,
                self.cap_s,
            )
        delay: float = min(self.cap_s, self.base_s * 2.0 ** min(self.failures - 1, 30))
        return delay * random.uniform(0.8, 1.0)  # instances that failed together retry apart

    def recovered(self) -> None:
        """Note a successful attempt (ends an outage, with one line)."""
        if self._since is not None:
            self.log.info(
                "%s: back after %.1fs (%s)",
                self.what,
                time.monotonic() - self._since,
                self._reason,
            )
        self._since = None
        self.failures = 0

    async def pause(self, exc: BaseException, wake: asyncio.Event | None = None) -> None:
        """Note a failed attempt and wait the backoff; a set `wake` cuts it short."""
        delay = self.failed(exc)
        if wake is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await wake.wait()


class Loop:
    """A named task that runs `run_pass` every `every_s` seconds (or what the pass returns), at
    once when woken, and backs off while passes fail (see `Outage`)."""

    def __init__(
        self,
        name: str,
        run_pass: Pass,
        *,
        every_s: float,
        log: logging.Logger,
        first_now: bool = False,
    ) -> None:
        self.name = name
        self.every_s = every_s
        self.outage = Outage(name, log)
        self._pass = run_pass
        self._first_now = first_now
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"baas-{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        self._wake.set()

    @property
    def alive(self) -> bool:
        """Still running (a loop ends only when stopped; otherwise it is a bug)."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        delay = 0.0 if self._first_now else self.every_s
        while True:
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation that
            # lands as the wait ends (the task then never stops)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            self._wake.clear()
            try:
                after = await self._pass()
            except Exception as exc:
                delay = self.outage.failed(exc)
                continue
            self.outage.recovered()
            delay = self.every_s if after is None else after
