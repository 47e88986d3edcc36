"""Durability: a write is acknowledged only after COMMIT reached disk, so PostgreSQL must have
fsync and synchronous_commit on. The server refuses to start otherwise; readiness re-checks, and
also that the system schema is migrated to this version (`readiness_problem`)."""

from __future__ import annotations

from baas.db.migrate import latest_version
from baas.db.pool import Database

READINESS_QUERY = (
    "SELECT current_setting('fsync') = 'on' AND current_setting('synchronous_commit') <> 'off'"
    " AS durable, (SELECT max(version) FROM baas.system_migrations) AS migration"
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


async def readiness_problem(db: Database) -> tuple[str, str] | None:
    """(status, what) if this database cannot serve writes safely now, else None: not durable,
    or the system schema is behind this version (a newer release's migrations are fine)."""
    row = await db.fetchrow(READINESS_QUERY)
    assert row is not None
    if not row["durable"]:
        return "unsafe", "fsync or synchronous_commit is off"
    if (row["migration"] or 0) < latest_version():
        return "unavailable", f"system migrations up to {latest_version()} are not applied"
    return None
