"""After-commit wake-ups: writes say what they changed; readers are woken once it committed.

A transaction that NOTIFYs commits under a database-wide lock that PostgreSQL holds through the
WAL flush, so notifying writes commit one at a time (measured: 4,000 vs 14,000-18,000 inserts/s).
So no write transaction notifies: it names its bells (`Tx.ring`, or `Database.ring` after an
autocommitted statement), and once it has committed this process's own waiters are called at
once, and the other instances hear of it by ONE NOTIFY per shared bell and interval, sent from
a transaction of its own (asynchronous commit: it holds that lock for no flush). Many writes,
one signal. Readers also poll, for writes that ring nothing (psql, other tools).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

log = logging.getLogger("baas.db.bells")

CHANGES = "baas_changes"  # a collection table was written (the realtime log grew)
JOBS = "baas_jobs"  # a job was queued
FILE_CLEANUP = "baas_file_cleanup"  # stored objects went on the cleanup list
GAP_S = 0.01  # at most one NOTIFY per shared bell this often, per process
RETRY_S = 1.0

Send = Callable[[str, list[str], str], Awaitable[object]]
NOTIFY_SQL = (
    "SELECT set_config('synchronous_commit', 'off', true), pg_notify(c, $2)"
    " FROM unnest($1::text[]) AS c"
)


class Bells:
    """Local waiters per bell, and the coalesced NOTIFY of the shared ones."""

    def __init__(self, send: Send) -> None:
        self.id = uuid.uuid4().hex  # the payload of our NOTIFYs: we ignore our own
        self._send = send
        self._waiters: dict[str, list[Callable[[], None]]] = {}
        self._shared: set[str] = set()
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def on(self, bell: str, waiter: Callable[[], None]) -> None:
        """Call `waiter` (it must not block) each time `bell` rings in this process."""
        self._waiters.setdefault(bell, []).append(waiter)

    def share(self, bell: str) -> None:
        """Tell the other instances too when `bell` rings here (a NOTIFY on its channel)."""
        self._shared.add(bell)

    def ring(self, bell: str) -> None:
        for waiter in self._waiters.get(bell, ()):
            waiter()
        if bell in self._shared and not self._closed:
            self._pending.add(bell)
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(
                    self._notify(), name="baas-bells"
                )

    def mine(self, payload: str) -> bool:
        """Is this NOTIFY one this process sent (its waiters were called already)?"""
        return payload == self.id

    async def _notify(self) -> None:
        try:
            while self._pending and not self._closed:
                bells, self._pending = sorted(self._pending), set()
                try:
                    await self._send(NOTIFY_SQL, bells, self.id)
                except Exception as exc:  # the readers' poll covers what this missed
                    log.warning("could not notify %s (%s); readers will poll", bells, exc)
                    await asyncio.sleep(RETRY_S)
                else:
                    await asyncio.sleep(GAP_S)
        finally:
            self._task = None

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
