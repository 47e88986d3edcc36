"""Rate limits shared by every instance: fixed-window counters in `baas.rate_limits`.

`hit(db, [(key, rate), ...])` counts one hit on each key and refuses (429, Retry-After) when any
is over its limit, in one statement. Keys name the action and who does it (`sign_in:ip:1.2.3.4`,
`sign_in:acct:<keyed digest of the email>`), so no address is stored here. A request refused by
one limit still counts against the others: an attacker cannot probe which one is tight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from baas.db.pool import Executor
from baas.errors import ApiError
from baas.runtime_settings import Rate


class RateLimited(ApiError):
    status, code = 429, "rate_limited"


async def hit(ex: Executor, limits: Sequence[tuple[str, Rate]], what: str) -> None:
    """Count a hit on every key with a limit; 429 when one is exceeded."""
    active = [(key, rate) for key, rate in limits if rate.limit > 0]
    if not active:
        return
    rows = await ex.fetch(_UPSERT, [k for k, _ in active], [r.window_s for _, r in active])
    by_key = {r["key"]: r for r in rows}
    retry = 0.0
    for key, rate in active:
        row = by_key.get(key)
        if row is not None and row["hits"] > rate.limit:
            retry = max(retry, rate.window_s + float(row["age"]))
    if retry > 0:
        seconds = max(1, math.ceil(retry))
        raise RateLimited(
            f"too many {what} attempts: try again in {seconds} seconds",
            headers={"Retry-After": str(seconds)},
            retry_after=seconds,
        )


# ON CONFLICT ... DO UPDATE cannot join another relation, so the window per key travels in a
# VALUES list the update looks up with a scalar subquery.
_UPSERT = """
WITH w AS (SELECT * FROM unnest($1::text[], $2::int[]) AS t(key, secs))
INSERT INTO baas.rate_limits AS r (key, window_start, hits)
SELECT key, now(), 1 FROM w
ON CONFLICT (key) DO UPDATE SET
  window_start = CASE
    WHEN r.window_start <= now() - make_interval(secs => (SELECT secs FROM w WHERE w.key = r.key))
    THEN now() ELSE r.window_start END,
  hits = CASE
    WHEN r.window_start <= now() - make_interval(secs => (SELECT secs FROM w WHERE w.key = r.key))
    THEN 1 ELSE r.hits + 1 END
RETURNING r.key, r.hits, extract(epoch FROM r.window_start - now()) AS age
"""
