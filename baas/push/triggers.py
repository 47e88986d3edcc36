"""Push triggers from the schema file: a record written in a collection with `push:` entries
sends the notifications they describe, with no server code.

The change-log trigger enqueues a `push.trigger` job in the writing transaction, carrying the row
as written (and as it was, for updates), so a trigger fires if and only if the write committed.
The job decides which entries fire (a create; an update that makes the record match the entry's
filter, or any update without one), evaluating filters in the database against those rows with
the one rule engine, renders the texts with jinja2's sandbox, and queues one message per entry
(its id derived from the job's, so a job that runs twice queues it once). The recipients are the
users the entry's `to` names: a relation field of the row as written, or a path through relations
(`post.author`) followed in the database, in one statement, when the job runs.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlglot import exp

from baas.context import AppContext
from baas.db.sqltree import Compiled, Params, column, template
from baas.jobs.queue import Fail, Job
from baas.push.notification import (
    MAX_COLLAPSE_KEY_BYTES,
    MAX_TEXT,
    Notification,
    SendRequest,
    Target,
)
from baas.push.service import create_message
from baas.rules import engine
from baas.rules.resolver import aliased
from baas.schema.auth_collection import AUTH_COLLECTION
from baas.schema.ids import record_id
from baas.schema.models import TABLE_SCHEMA, Collection, Field, PushTrigger
from baas.schema.push_triggers import RecipientPathError, recipient_path

log = logging.getLogger("baas.push")
KIND = "push.trigger"
_IDS = uuid.UUID("5b0c3c2e-8f0e-4d59-9a57-6f2d1c1c7a10")  # namespace of trigger message ids
_ENV = SandboxedEnvironment(autoescape=False)  # push texts are not HTML
MAX_RECIPIENTS = 10_000


async def run(ctx: AppContext, job: Job) -> None:
    p = job.payload
    c = ctx.schema.collection(p["collection"])
    event = {"insert": "create", "update": "update"}.get(p["op"])
    if c is None or event is None:
        return
    failed = []
    for i, trigger in enumerate(c.push):
        if trigger.on != event or not await _fires(ctx, c, trigger, p["new"], p.get("old")):
            continue
        try:
            note = _render(trigger, p["new"], p.get("old"))
            users = await _recipients(ctx, c, trigger.to, p["new"])
        except (TemplateError, RecipientPathError) as exc:
            failed.append(f"push[{i}]: {exc}")
            continue
        if not users:
            continue
        request = SendRequest(Target(users=users), note, None)
        message_id = str(uuid.uuid5(_IDS, f"{job.id}/{i}"))
        async with ctx.db.transaction() as tx:
            await create_message(tx, request, f"trigger:{c.name}", message_id)
    if failed:
        raise Fail("; ".join(failed))


async def _fires(
    ctx: AppContext, c: Collection, t: PushTrigger, new: Mapping[str, Any], old: Any
) -> bool:
    if t.filter is None:
        return True
    q = _matcher(ctx, c, t.filter)
    now = await ctx.db.fetchval(q.sql, *q.bind({"row": dict(new)}))
    if t.on == "create" or not now:
        return bool(now)
    before = await ctx.db.fetchval(q.sql, *q.bind({"row": dict(old or {})}))
    return not before  # it matches now and did not before the update


def _matcher(ctx: AppContext, c: Collection, text: str) -> Compiled:
    """`SELECT <filter> FROM <the row as a record of the table>`, cached per schema version."""

    def build() -> Compiled:
        p = Params()
        cond = engine.filter_condition(
            ctx.schema.schema, c, text, "rec", p, ctx.query_limits, auth_id=exp.Null(), admin=True
        )
        query = template(
            "SELECT coalesce(__cond, false) FROM jsonb_populate_record(CAST(NULL AS __s.__t),"
            " CAST(__row AS JSONB)) AS __rec",
            cond=exp.Paren(this=cond),
            s=TABLE_SCHEMA,
            t=c.name,
            row=p.arg("row"),
            rec="rec",
        )
        return p.compile(query)

    result: Compiled = ctx.schema.memo(("push-trigger", c.name, text), build)
    return result


@functools.lru_cache(maxsize=256)
def _template(source: str) -> Template:
    return _ENV.from_string(source)


def _render(t: PushTrigger, new: Mapping[str, Any], old: Any) -> Notification:
    scope = {"record": new, "old": old}

    def text(source: str | None) -> str | None:
        # a send's limits: the record's values are the client's, of any length
        return _template(source).render(scope)[:MAX_TEXT] if source else None

    collapse_key = (text(t.collapse_key) or "").encode()[:MAX_COLLAPSE_KEY_BYTES]
    return Notification(
        title=text(t.title) or "",
        body=text(t.body) or "",
        data={k: text(v) or "" for k, v in t.data},
        sound=text(t.sound),
        thread=text(t.thread),
        collapse_key=collapse_key.decode(errors="ignore") or None,  # whole characters
        priority=t.priority,
    )


async def _recipients(
    ctx: AppContext, c: Collection, to: str, new: Mapping[str, Any]
) -> tuple[str, ...]:
    """The users `to` names for the row `new`: its own relation field, or a path followed from
    the record its first relation names."""
    first, _, rest = to.partition(".")
    if not rest:
        return _ids(new.get(first))
    start = record_id(new.get(first)) if isinstance(new.get(first), str) else None
    if start is None:
        return ()
    q = _path_query(ctx, c, to)
    rows = await ctx.db.fetch(q.sql, *q.bind({"start": start}))
    return tuple(str(r[0]) for r in rows)


def _ids(value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    ids = (record_id(v) for v in values[:MAX_RECIPIENTS] if isinstance(v, str))
    return tuple(dict.fromkeys(i for i in ids if i))


def _path_query(ctx: AppContext, c: Collection, to: str) -> Compiled:
    """`SELECT DISTINCT` the user ids at the end of `to`, from the record its first relation
    names (`$start`): one join per further relation, the last maybe unnested; cached per
    schema version. RecipientPathError if the path no longer leads to users."""

    def build() -> Compiled:
        hops = recipient_path(
            ctx.schema.schema, c, to, ctx.query_limits.max_relation_depth, AUTH_COLLECTION
        )
        p = Params()
        aliases = [f"h{i}" for i in range(1, len(hops))]
        query = exp.select().from_(aliased(_target(ctx, hops[0]), aliases[0]))
        for i in range(1, len(aliases)):
            on = exp.EQ(
                this=column("id", aliases[i]), expression=column(hops[i].name, aliases[i - 1])
            )
            query = query.join(aliased(_target(ctx, hops[i]), aliases[i]), on=on)
        last: exp.Expression = column(hops[-1].name, aliases[-1])
        if hops[-1].multiple:
            last = exp.Unnest(expressions=[last])
        query = query.select(exp.alias_(last, "uid", quoted=True)).where(
            exp.EQ(
                this=column("id", aliases[0]),
                expression=exp.Cast(this=p.arg("start"), to=exp.DataType.build("uuid")),
            )
        )
        outer = template(
            "SELECT DISTINCT __v.uid FROM (__q) AS __v WHERE __v.uid IS NOT NULL LIMIT __n",
            v="v",
            uid="uid",
            q=query,
            n=exp.Literal.number(MAX_RECIPIENTS),
        )
        return p.compile(outer)

    result: Compiled = ctx.schema.memo(("push-recipients", c.name, to), build)
    return result


def _target(ctx: AppContext, f: Field) -> Collection:
    target = ctx.schema.collection(f.collection or "")
    if target is None:  # recipient_path checked it; the schema is one version
        raise RecipientPathError(f"{f.name} points to a missing collection")
    return target
