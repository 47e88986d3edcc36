"""A client that stops reading costs the server bounded memory and is cut off (close 4008), while
everyone else goes on: other subscribers get their changes and REST answers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.realtime.conftest import Serve, vm_rss_bytes

BLOBS: dict[str, Any] = {
    "collections": {
        "blobs": {"fields": {"n": "integer", "body": "text"}, "rules": {"list": "", "view": ""}}
    }
}
MB = 1024 * 1024
TOTAL = 2000  # records written while the slow client reads nothing
BODY = 40_000  # characters of text in each: 80 MB of events for a subscriber of everything
PER_BATCH = 20  # 800 KB of events a batch: under the queue limit, so only not reading is slow
QUEUE_LIMIT = MB


async def test_a_slow_consumer_is_cut_off_and_costs_bounded_memory(serve: Serve) -> None:
    live = await serve(realtime_max_queued_bytes=QUEUE_LIMIT)
    await live.apply(BLOBS)
    fast = await live.connect()
    await fast.subscribe("f", "blobs", fields="id,n")  # small entries: it keeps up easily
    slow = await live.raw(rcvbuf=4096)  # a small window: TCP really stops draining
    await slow.send_json({"type": "subscribe", "id": "s", "collection": "blobs"})
    await slow.expect("subscribed")
    # from here on the slow client reads nothing until the end

    async def write(first: int, count: int) -> None:
        await live.batch(
            [
                {
                    "op": "create",
                    "collection": "blobs",
                    "body": {"n": n, "body": f"{n:06d}" + "x" * BODY},
                }
                for n in range(first, first + count)
            ]
        )

    await write(-PER_BATCH, PER_BATCH)  # warm-up: caches, pools, buffers
    await fast.changes(PER_BATCH, timeout=10)
    baseline = vm_rss_bytes()

    received = asyncio.create_task(fast.changes(TOTAL, timeout=60))
    slowest_rest = 0.0
    for first in range(0, TOTAL, PER_BATCH):
        started = time.monotonic()
        await write(first, PER_BATCH)
        slowest_rest = max(slowest_rest, time.monotonic() - started)
    got = await received
    assert [c["record"]["n"] for c in got] == list(range(TOTAL))
    assert set(got[0]["record"]) == {"id", "n"}

    grown = vm_rss_bytes() - baseline
    assert grown < 50 * MB, f"the server grew by {grown / MB:.0f} MB for one slow client"
    assert slowest_rest < 5, f"a write took {slowest_rest:.1f}s"
    health = await live.rest.get("/api/health/ready")
    assert health.status_code == 200

    # the slow client finally reads: some changes, then the end of the connection
    code = await slow.close_code(timeout=20)
    assert code in (4008, None), f"closed with {code}"
    assert slow.received < TOTAL * BODY / 4, "the slow client was sent everything after all"

    # a new subscriber is welcome (the server is fine), and the fast one still gets changes
    again = await live.connect()
    await again.subscribe("s", "blobs", fields="id,n")
    await write(TOTAL, 1)
    [fresh] = await again.changes(1)
    [also] = await fast.changes(1)
    assert fresh["record"]["n"] == also["record"]["n"] == TOTAL
