"""The file cleaner: deletes the objects on the cleanup list once they are due.

Keys join the list in the transactions that stop referencing them (`0005_files.sql`), so a key
a committed record points to is never deleted. Every instance runs a cleaner; each claims due
keys with `FOR UPDATE SKIP LOCKED`, deletes the objects (and their thumbnails) from the backend
and then the rows, in one transaction. A backend that fails leaves the rows, retried with backoff;
while the database is down the cleaner backs off and logs the outage once (`baas.loops`).
"""

from __future__ import annotations

import logging

from baas.context import AppContext
from baas.db import bells
from baas.errors import ApiError
from baas.loops import Loop
from baas.storage.download import thumbs_prefix

log = logging.getLogger("baas.storage")

CHANNEL = bells.FILE_CLEANUP
BATCH = 100
INTERVAL_S = 60.0  # looks for due keys at least this often (uploads that never committed)
MAX_BACKOFF_S = 3600


class FileCleaner:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.loop = Loop("file cleaner", self._sweep_all, every_s=INTERVAL_S, log=log)

    def start(self) -> None:
        self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    def wake(self, _payload: str = "") -> None:
        self.loop.wake()

    async def _sweep_all(self) -> None:
        while await self.sweep() == BATCH:
            pass

    async def sweep(self) -> int:
        """Delete one batch of due objects; the number of keys handled."""
        async with self.ctx.db.transaction() as tx:
            keys = [
                r["key"]
                for r in await tx.fetch(
                    "SELECT key FROM baas.file_cleanup WHERE due <= now() ORDER BY due"
                    " LIMIT $1 FOR UPDATE SKIP LOCKED",
                    BATCH,
                )
            ]
            if not keys:
                return 0
            try:
                await self.ctx.storage.delete(keys)
                for key in keys:
                    await self.ctx.storage.delete_prefix(thumbs_prefix(key))
            except ApiError as exc:  # the backend is down: try these again later
                await tx.execute(
                    "UPDATE baas.file_cleanup SET attempts = attempts + 1, last_error = $2,"
                    " due = now() + make_interval(secs => least($3, 2 ^ (attempts + 1) * 5))"
                    " WHERE key = ANY($1::text[])",
                    keys,
                    exc.message,
                    float(MAX_BACKOFF_S),
                )
                log.warning("file cleanup: %s (%d keys wait)", exc.message, len(keys))
                return 0
            await tx.execute("DELETE FROM baas.file_cleanup WHERE key = ANY($1::text[])", keys)
        return len(keys)
