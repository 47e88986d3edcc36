"""Sweeping what auth leaves behind: ended sessions, spent one-time tokens, stale rate counters
and old mail. Any instance may sweep (every statement is idempotent); each does so once an hour.
"""

from __future__ import annotations

import logging

from baas.db.pool import Database
from baas.loops import Loop
from baas.runtime_settings import MAX_RATE_WINDOW_S

log = logging.getLogger("baas.auth")
INTERVAL_S = 3600.0
KEEP_ENDED_SESSIONS = "7 days"  # revoked sessions stay listed for an admin this long
KEEP_MAIL = "30 days"

_SWEEPS = (
    # an ended session outlives its access tokens (at most a day) before it is dropped
    "DELETE FROM baas.sessions WHERE (revoked IS NOT NULL AND revoked < now() - interval "
    f"'{KEEP_ENDED_SESSIONS}') OR max_expires < now() - interval '1 day' "
    "OR expires < now() - interval '1 day'",
    "DELETE FROM baas.auth_tokens WHERE expires < now() - interval '1 day'",
    f"DELETE FROM baas.rate_limits WHERE window_start < now() - make_interval(secs => "
    f"{MAX_RATE_WINDOW_S})",
    f"DELETE FROM baas.mail WHERE created < now() - interval '{KEEP_MAIL}' "
    "AND status IN ('outbox', 'sent', 'failed')",
)


async def sweep(db: Database) -> int:
    """Run every sweep once; how many rows went."""
    removed = 0
    for sql in _SWEEPS:
        status = await db.execute(sql)
        removed += int(status.rsplit(" ", 1)[-1])
    return removed


class Housekeeper:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.loop = Loop("housekeeping", self._sweep, every_s=INTERVAL_S, log=log, first_now=True)

    def start(self) -> None:
        self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    async def _sweep(self) -> None:
        removed = await sweep(self._db)
        if removed:
            log.info("housekeeping removed %d expired auth row(s)", removed)
