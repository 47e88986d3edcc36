"""System migrations for the `baas` schema: versioned SQL files applied on start-up.

All pending files run in one transaction under an advisory lock, so several instances starting at
once apply each migration exactly once; each is recorded with its checksum in
`baas.system_migrations`, and a changed checksum of an applied file stops the start-up.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

from baas.db.pool import Connection

log = logging.getLogger("baas.db.migrate")

# Arbitrary but fixed: the advisory lock every instance takes while migrating.
_LOCK_KEY = 0x6261_6173_0001
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# Migrations revised after a release shipped them: the checksums of their earlier texts, which a
# database migrated by that release carries. Such a database keeps its schema (the revision only
# changes what an upgrade from before the migration does), so these are accepted as applied.
_EARLIER_TEXTS: dict[int, frozenset[str]] = {
    # 0008: the change log; its revision carries the sequencer's replayable changes over.
    8: frozenset({"81f0a4733c5cf18b44393a2a2cb5090dcc5f07af3a732548f785f5c49118589f"}),
}


class MigrationError(RuntimeError):
    """The database's system schema does not match this version of baas."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """Every migration shipped with this package, in version order."""
    found = []
    for entry in resources.files("baas.db.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


@functools.cache
def latest_version() -> int:
    """The version of the newest migration shipped with this package."""
    return available()[-1].version


async def migrate(conn: Connection, upto: int | None = None) -> list[Migration]:
    """Apply pending system migrations (those up to version `upto` only, when given: an older
    release's schema, to upgrade from); return the ones applied by this call."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            """
            CREATE SCHEMA IF NOT EXISTS baas;
            CREATE TABLE IF NOT EXISTS baas.system_migrations (
              version int PRIMARY KEY,
              name text NOT NULL,
              checksum text NOT NULL,
              applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await conn.fetch("SELECT version, checksum FROM baas.system_migrations")
        applied = {r["version"]: r["checksum"] for r in rows}
        shipped = available()
        _check_applied(applied, shipped)
        pending = [
            m for m in shipped if m.version not in applied and (upto is None or m.version <= upto)
        ]
        for migration in pending:
            log.info("applying system migration %04d_%s", migration.version, migration.name)
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO baas.system_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    return pending


def _check_applied(applied: dict[int, str], shipped: list[Migration]) -> None:
    known = {m.version: m for m in shipped}
    for version, checksum in applied.items():
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has system migration {version}, unknown to this version of baas "
                "(was it migrated by a newer release?)"
            )
        if checksum != migration.checksum and checksum not in _EARLIER_TEXTS.get(version, ()):
            raise MigrationError(f"system migration {version} changed after it was applied")
