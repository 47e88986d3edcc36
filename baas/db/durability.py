"""Durability: a write is acknowledged only after COMMIT reached disk, so PostgreSQL must have
fsync and synchronous_commit on. The server refuses to start otherwise; readiness re-checks."""

from __future__ import annotations

from baas.db.pool import Database

DURABILITY_QUERY = (
    "SELECT current_setting('fsync') = 'on' AND current_setting('synchronous_commit') <> 'off'"
)


class NotDurable(RuntimeError):
    """PostgreSQL could lose acknowledged writes on a crash."""


async def check_durability(db: Database) -> None:
    row = await db.fetchrow(
        "SELECT current_setting('fsync') AS fsync, "
        "current_setting('synchronous_commit') AS synchronous_commit"
    )
    assert row is not None
    if row["fsync"] != "on" or row["synchronous_commit"] == "off":
        raise NotDurable(
            f"refusing to start: PostgreSQL has fsync={row['fsync']} and synchronous_commit="
            f"{row['synchronous_commit']}; acknowledged writes could be lost on a crash. "
            "Turn both on."
        )
