"""Rules over users for push, compiled by the one rule engine: who may join a topic, which users a
signed-in user may push to, and which users a send's filter names.

Each is a condition on the users collection (the record is the user in question; `auth.*` is the
caller), evaluated in the database inside one statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlglot import exp

from baas.context import AppContext
from baas.db.sqltree import Compiled, Params, template
from baas.errors import Forbidden, InvalidParameter
from baas.query import FilterError
from baas.rules import engine
from baas.rules.resolver import pg_type
from baas.schema.auth_collection import AUTH_COLLECTION
from baas.schema.models import TABLE_SCHEMA, Collection


def users(ctx: AppContext) -> Collection:
    c = ctx.schema.collection(AUTH_COLLECTION)
    if c is None:  # the auth collection is built in; a schema without it cannot have users
        raise InvalidParameter("this server has no users collection")
    return c


def user_condition(
    ctx: AppContext, text: str, alias: str, p: Params, auth: exp.Expression
) -> exp.Expression:
    """`text` (a filter or rule over users) as a condition on `alias`; 400 if it won't compile."""
    try:
        return engine.filter_condition(
            ctx.schema.schema,
            users(ctx),
            text,
            alias,
            p,
            ctx.query_limits,
            auth_id=auth,
            admin=True,
        )
    except FilterError as exc:
        raise InvalidParameter(f"filter: {exc}", code="invalid_filter") from None


def users_filter(ctx: AppContext, text: str, p: Params) -> exp.Expression:
    """`SELECT id FROM users WHERE <filter>` as a subquery (admins' sends: no auth)."""
    cond = user_condition(ctx, text, "pu", p, exp.Null())
    return template(
        "SELECT __pu.id FROM __s.__t AS __pu WHERE __cond",
        pu="pu",
        s=TABLE_SCHEMA,
        t=AUTH_COLLECTION,
        cond=exp.Paren(this=cond),
    )


async def users_passing(
    ctx: AppContext, rule: str, user_ids: Sequence[str], auth_id: str | None
) -> set[str]:
    """Which of `user_ids` pass `rule` with the caller as `auth`."""
    if not rule.strip():
        found = await ctx.db.fetch(
            f'SELECT id FROM {TABLE_SCHEMA}."{AUTH_COLLECTION}" WHERE id = ANY($1::uuid[])',  # noqa: S608
            list(user_ids),
        )
        return {r["id"] for r in found}
    p = Params()
    cond = user_condition(ctx, rule, "pu", p, exp.Cast(this=p.arg("auth"), to=pg_type("uuid")))
    query = template(
        "SELECT __pu.id FROM __s.__t AS __pu WHERE __pu.id = ANY(CAST(__ids AS UUID[])) AND __cond",
        pu="pu",
        s=TABLE_SCHEMA,
        t=AUTH_COLLECTION,
        ids=p.arg("ids"),
        cond=exp.Paren(this=cond),
    )
    q: Compiled = p.compile(query)
    rows = await ctx.db.fetch(q.sql, *q.bind({"ids": list(user_ids), "auth": auth_id}))
    return {r[0] for r in rows}


def topic_rule(topics: Mapping[str, str], topic: str) -> str | None:
    """The rule for joining `topic`: its own entry, else the longest matching `prefix*`."""
    if topic in topics:
        return topics[topic]
    prefixes = [p for p in topics if p.endswith("*") and topic.startswith(p[:-1])]
    return topics[max(prefixes, key=len)] if prefixes else None


async def check_topic(ctx: AppContext, topic: str, user_id: str | None, admin: bool) -> None:
    """May this caller join `topic`? Forbidden (topic_not_allowed) if not."""
    if admin:
        return
    rule = topic_rule(ctx.runtime["push.topics"], topic)
    if rule is None:
        raise Forbidden(f"topic {topic!r} is not open to subscribers", code="topic_not_allowed")
    if not rule.strip():
        return
    if user_id is None or user_id not in await users_passing(ctx, rule, [user_id], user_id):
        raise Forbidden(f"you may not subscribe to topic {topic!r}", code="topic_not_allowed")
