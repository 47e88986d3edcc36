"""Before a send is queued: can any of its devices be delivered to with the apps configured now?

A send answers `409 push_not_configured` at once, instead of `202` and a failure a moment later,
when `push.apps` is empty, or when its targets have enabled devices and none of them has a
configured app (by the routing of `apps.find_app`). A send that reaches some devices goes ahead;
those without an app fail alone, with the reason in their deliveries.

The check is one statement of `EXISTS` per kind of target, each driven by an index (user id,
device id, topic) and stopping at the first device an app delivers to, so it costs little
however many devices the send reaches; only when it finds none does a second, bounded statement
name the platforms and app ids that lack an app.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlglot import exp

from baas.context import AppContext
from baas.db.sqltree import Compiled, Params, template
from baas.errors import Conflict
from baas.push import access
from baas.push.apps import DEV_APPS, PushApp, no_app, routes
from baas.push.notification import Target

SAMPLE = 1000  # devices per kind of target looked at to name what lacks an app
NAMED = 10  # (platform, app id) pairs an error names at most

_ROUTABLE = """(__d.platform = ANY(CAST(__everyone AS TEXT[]))
  OR (__d.platform, __d.app_id) IN (SELECT * FROM unnest(CAST(__platforms AS TEXT[]),
                                                         CAST(__ids AS TEXT[]))))"""

_REACHES = f"""
SELECT EXISTS (SELECT 1 FROM baas.push_devices AS __d
                WHERE __d.enabled AND __d.user_id = ANY(CAST(__users AS UUID[])) AND {_ROUTABLE})
    OR EXISTS (SELECT 1 FROM baas.push_devices AS __d
                WHERE __d.enabled AND __d.id = ANY(CAST(__devices AS UUID[])) AND {_ROUTABLE})
    OR EXISTS (SELECT 1 FROM baas.push_topic_devices AS __td
                 JOIN baas.push_devices AS __d ON __d.id = __td.device_id
                WHERE __td.topic = ANY(CAST(__topics AS TEXT[])) AND __d.enabled AND {_ROUTABLE})
    OR EXISTS (SELECT 1 FROM baas.push_topic_users AS __tu
                 JOIN baas.push_devices AS __d ON __d.user_id = __tu.user_id
                WHERE __tu.topic = ANY(CAST(__topics AS TEXT[])) AND __d.enabled AND {_ROUTABLE})
    OR EXISTS (SELECT 1 FROM baas.push_devices AS __d
                WHERE __d.enabled AND __byfilter AND {_ROUTABLE})
"""  # noqa: S608 - constant parts

_TARGETED = """
SELECT DISTINCT __s.platform, __s.app_id FROM (
  (SELECT __d.platform, __d.app_id FROM baas.push_devices AS __d
    WHERE __d.enabled AND __d.user_id = ANY(CAST(__users AS UUID[])) LIMIT __n)
  UNION ALL
  (SELECT __d.platform, __d.app_id FROM baas.push_devices AS __d
    WHERE __d.enabled AND __d.id = ANY(CAST(__devices AS UUID[])) LIMIT __n)
  UNION ALL
  (SELECT __d.platform, __d.app_id FROM baas.push_topic_devices AS __td
     JOIN baas.push_devices AS __d ON __d.id = __td.device_id
    WHERE __td.topic = ANY(CAST(__topics AS TEXT[])) AND __d.enabled LIMIT __n)
  UNION ALL
  (SELECT __d.platform, __d.app_id FROM baas.push_topic_users AS __tu
     JOIN baas.push_devices AS __d ON __d.user_id = __tu.user_id
    WHERE __tu.topic = ANY(CAST(__topics AS TEXT[])) AND __d.enabled LIMIT __n)
  UNION ALL
  (SELECT __d.platform, __d.app_id FROM baas.push_devices AS __d
    WHERE __d.enabled AND __byfilter LIMIT __n)) AS __s
ORDER BY 1, 2 LIMIT __named
"""


async def check(ctx: AppContext, target: Target) -> None:
    """Conflict (push_not_configured) when nothing of this send could be delivered."""
    apps: dict[str, PushApp] = ctx.runtime["push.apps"]
    if not apps:
        raise Conflict(
            "no push app is configured (the runtime setting push.apps is empty), so nothing "
            "could be delivered: an admin adds the APNs and FCM apps, or for development the "
            f"outbox: baas settings set push.apps '{orjson.dumps(DEV_APPS).decode()}' (see the"
            " README's Push section)",
            code="push_not_configured",
        )
    r = routes(apps)
    args = {
        "users": list(target.users),
        "devices": list(target.devices),
        "topics": list(target.topics),
        "everyone": list(r.everyone),
        "platforms": [p for p, _ in r.pairs],
        "ids": [i for _, i in r.pairs],
    }
    reaches = _statement(ctx, _REACHES, target)
    if await ctx.db.fetchval(reaches.sql, *reaches.bind(args)):
        return
    named = _statement(ctx, _TARGETED, target)
    missing = await ctx.db.fetch(named.sql, *named.bind(args))
    if not missing:
        return  # no device at all: the message is sent to nobody, as before
    reasons = [no_app(apps, row["platform"], row["app_id"]) for row in missing]
    raise Conflict(
        f"nothing could be delivered: {'; '.join(dict.fromkeys(reasons))}. Register the "
        "devices for a configured app, or an admin adds theirs to the runtime setting push.apps",
        code="push_not_configured",
        unreachable=[{"platform": row["platform"], "app_id": row["app_id"]} for row in missing],
    )


def _statement(ctx: AppContext, sql: str, target: Target) -> Compiled:
    p = Params()
    by_filter: exp.Expression = exp.false()
    if target.filter is not None:
        chosen = access.users_filter(ctx, target.filter, p)
        by_filter = template("__d.user_id IN (__q)", d="d", q=exp.Subquery(this=chosen))
    names: dict[str, Any] = {
        "d": "d",
        "td": "td",
        "tu": "tu",
        "s": "s",
        "byfilter": exp.Paren(this=by_filter),
        "n": exp.Literal.number(SAMPLE),
        "named": exp.Literal.number(NAMED),
    }
    for name in ("users", "devices", "topics", "everyone", "platforms", "ids"):
        names[name] = p.arg(name)
    return p.compile(template(sql, **names))
