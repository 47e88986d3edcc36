"""Health endpoints for orchestrators: liveness (restarting this process would help?) and
readiness (can it serve requests now?).

Liveness fails only when the process cannot make progress or recover by itself: a background
loop or the LISTEN listener ended, or the embedded PostgreSQL's supervisor gave up restarting it.
A database outage is not a liveness failure: the pool, the listener and the loops reconnect on
their own. A process whose event loop is blocked cannot answer at all: the probe's timeout is that
check. Readiness asks the database one question, bounded in time: it answers, it is durable
(fsync, synchronous_commit), and its system schema is this version's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from baas.db.durability import readiness_problem
from baas.errors import ApiError
from baas.http.request import context
from baas.http.responses import json_response
from baas.http.routing import route

READY_PROBE_S = 2.0  # the readiness query, at most (then 503: a probe must not hang)

Check = Callable[[], str | None]  # None while fine, else what is wrong


class Liveness:
    """The named checks liveness runs (filled in by the app as it starts its parts)."""

    def __init__(self) -> None:
        self._checks: list[tuple[str, Check]] = []

    def add(self, name: str, check: Check) -> None:
        self._checks.append((name, check))

    def problems(self) -> dict[str, str]:
        found = {}
        for name, check in self._checks:
            problem = check()
            if problem is not None:
                found[name] = problem
        return found


def _liveness(request: Request) -> Liveness:
    return request.scope["state"]["liveness"]  # type: ignore[no-any-return]


async def live(request: Request) -> Response:
    problems = _liveness(request).problems()
    if problems:
        return json_response({"status": "failing", "problems": problems}, status=503)
    return json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    ctx = context(request)
    problems = _liveness(request).problems()
    if problems:
        return json_response({"status": "failing", "problems": problems}, status=503)
    try:
        async with asyncio.timeout(READY_PROBE_S):
            problem = await readiness_problem(ctx.db)
    except TimeoutError:
        return json_response({"status": "unavailable", "database": "database_timeout"}, 503)
    except ApiError as exc:
        return json_response({"status": "unavailable", "database": exc.code}, status=503)
    if problem is not None:
        status, what = problem
        return json_response({"status": status, "database": what}, status=503)
    return json_response(
        {"status": "ready", "database": "ok", "schema_version": ctx.schema.version}
    )


routes = [
    route("/api/health", GET=live),
    route("/api/health/live", GET=live),
    route("/api/health/ready", GET=ready),
]
