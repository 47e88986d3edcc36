"""Schema services: load the live schema, diff a document against it, apply a plan, history.

Applying runs every statement of the plan, the new document and its history row in ONE
transaction, after checking no other change landed since the plan was made; then it NOTIFYs
`baas_schema` so every instance reloads. A failing step leaves the schema exactly as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import orjson

from baas.db.pool import Connection, Database, Executor, StatementFailed, execute_checked
from baas.db.sqltree import render
from baas.errors import ApiError, Conflict
from baas.query import QueryLimits
from baas.rules.engine import check_rules
from baas.schema import auth_collection as auth
from baas.schema import ddl
from baas.schema.diff import Plan, plan
from baas.schema.document import SchemaError, parse_document, to_document
from baas.schema.models import Collection, Schema

log = logging.getLogger("baas.schema")

CHANNEL = "baas_schema"
DDL_STATEMENT_TIMEOUT = "15min"  # index builds on big tables take time; API queries keep theirs
DDL_LOCK_TIMEOUT = "10s"  # never queue behind a long transaction while blocking every reader


class DestructiveChange(ApiError):
    status, code = 409, "destructive_change"


class ApplyFailed(ApiError):
    status, code = 409, "schema_apply_failed"


async def load(db: Database) -> Schema:
    row = await db.fetchrow("SELECT version, document FROM baas.schema_state WHERE id = 1")
    if row is None:
        return Schema()
    return _from_row(row["version"], row["document"])


def _from_row(version: int, document: Any) -> Schema:
    schema = parse_document(document, stored=True)
    return Schema(collections=schema.collections, version=version)


async def populated_collections(db: Database, schema: Schema) -> frozenset[str]:
    """Names of the collections that hold at least one record."""
    out = set()
    async with db.connection() as conn:
        for c in schema.collections:
            if await conn.fetchval(render(ddl.has_rows(c))):
                out.add(c.name)
    return frozenset(out)


async def diff(db: Database, document: Any) -> Plan:
    """Validate `document` and plan the change from the live schema to it."""
    wanted = parse_document(document)
    problems = check_rules(wanted, QueryLimits())
    if problems:
        raise SchemaError(problems)
    live = await load(db)
    return plan(live, wanted, await populated_collections(db, live))


@dataclass(frozen=True)
class Applied:
    version: int
    schema: Schema
    plan: Plan


async def apply(db: Database, change: Plan, *, allow_destructive: bool, applied_by: str) -> Applied:
    """Apply `change` in one transaction; refuse destructive steps unless allowed."""
    if change.destructive_steps and not allow_destructive:
        raise DestructiveChange(
            "the plan has destructive steps; apply again with allow_destructive to confirm",
            steps=[s.summary for s in change.destructive_steps],
        )
    if change.empty:
        return Applied(change.base_version, change.schema, change)
    async with db.transaction() as tx:
        version = await tx.fetchval("SELECT version FROM baas.schema_state WHERE id = 1 FOR UPDATE")
        if version != change.base_version:
            raise Conflict(
                f"the schema changed (now version {version}) since this plan was made against "
                f"version {change.base_version}; diff again",
                code="schema_changed",
            )
        await tx.execute(f"SET LOCAL statement_timeout = '{DDL_STATEMENT_TIMEOUT}'")
        await tx.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
        await _run_steps(tx.conn, change)
        await _follow_files(tx, change.schema)
        await _follow_push(tx, change.schema)
        new_version = version + 1
        document = to_document(change.schema, with_ids=True)
        await tx.execute(
            "UPDATE baas.schema_state SET version = $1, document = $2, updated = now() "
            "WHERE id = 1",
            new_version,
            document,
        )
        await tx.execute(
            "INSERT INTO baas.schema_history (version, applied_by, plan, document) "
            "VALUES ($1, $2, $3, $4)",
            new_version,
            applied_by,
            change.to_json(),
            document,
        )
        await tx.execute("SELECT pg_notify($1, $2)", CHANNEL, str(new_version))
    log.info(
        "schema version %s applied by %s (%d steps)", new_version, applied_by, len(change.steps)
    )
    schema = Schema(collections=change.schema.collections, version=new_version)
    return Applied(new_version, schema, change)


async def _follow_push(tx: Executor, schema: Schema) -> None:
    """The change-log trigger enqueues push-trigger jobs for the collections listed here."""
    await tx.execute("DELETE FROM baas.push_trigger_collections")
    await tx.execute(
        "INSERT INTO baas.push_trigger_collections SELECT unnest($1::text[])",
        [c.name for c in schema.collections if c.push],
    )


async def _follow_files(tx: Executor, schema: Schema) -> None:
    """Stored files follow renamed collections; those of dropped file fields and collections
    leave `baas.files` (and go on the cleanup list) with the change that drops them."""
    collections = [(c.id, c.name) for c in schema.collections]
    await tx.execute(
        "UPDATE baas.files f SET collection = m.name FROM unnest($1::text[], $2::text[]) AS"
        " m(id, name) WHERE f.collection_id = m.id AND f.collection <> m.name",
        [i for i, _ in collections],
        [n for _, n in collections],
    )
    kept = [f"{c.id}/{f.id}" for c in schema.collections for f in c.fields if f.type == "file"]
    await tx.execute(
        "DELETE FROM baas.files WHERE NOT (collection_id || '/' || field_id = ANY($1::text[]))",
        kept,
    )


async def _run_steps(conn: Connection, change: Plan) -> None:
    for number, step in enumerate(change.steps, 1):
        for statement in step.statements:
            try:
                if statement.expect_zero:
                    count = await execute_checked(conn, statement.sql, fetch=True)
                    if count:
                        raise ApplyFailed(
                            f"step {number} ({step.summary}): {count} {statement.expect_zero}",
                            step=number,
                        )
                else:
                    await execute_checked(conn, statement.sql)
            except StatementFailed as exc:
                raise ApplyFailed(
                    f"step {number} ({step.summary}) failed: {exc.message}",
                    step=number,
                    sqlstate=exc.sqlstate,
                ) from None


async def ensure_auth_collection(db: Database) -> None:
    """Give the live schema its `users` collection with every system field (on first start, or
    after an upgrade that added system fields). Several instances may race: one applies, the
    others see the new version and find nothing left to do."""
    for _ in range(5):
        live = await load(db)
        users = live.collection(auth.AUTH_COLLECTION)
        if users is not None and all(users.field(n) for n in auth.SYSTEM_NAMES):
            return
        if users is None:
            wanted = Schema((auth.default_users(), *live.collections))
        else:
            wanted = Schema(
                tuple(_with_system_fields(c) if c is users else c for c in live.collections)
            )
        change = plan(live, wanted, await populated_collections(db, live))
        try:
            await apply(db, change, allow_destructive=False, applied_by="system")
        except Conflict:
            continue  # another instance applied first: look again
    raise RuntimeError("could not add the users collection to the schema")


def _with_system_fields(users: Collection) -> Collection:
    clash = [f.name for f in users.fields if f.name in auth.SYSTEM_NAMES and not f.system]
    if clash:
        raise RuntimeError(
            f"the users collection has field(s) {', '.join(clash)} that baas now manages itself: "
            "rename them (renamed_from) before upgrading"
        )
    custom = tuple(f for f in users.fields if not f.system)
    return auth.with_built_ins(replace(users, fields=custom), users.rules)


async def history(db: Database, limit: int = 50) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT version, applied_at, applied_by, plan FROM baas.schema_history "
        "ORDER BY version DESC LIMIT $1",
        limit,
    )
    return [
        {
            "version": r["version"],
            "applied_at": r["applied_at"],
            "applied_by": r["applied_by"],
            "plan": r["plan"],
        }
        for r in rows
    ]


def document_bytes(schema: Schema) -> bytes:
    return orjson.dumps(to_document(schema))
