"""Bounded slices of fan-out work, so that requests never wait for a whole fan-out.

Fanning one batch out to 10,000 subscribers is tens of milliseconds of Python with nothing to
wait for in it (grouping and judging the subscribers, queuing their entries, writing one frame
per connection). Done in one piece, every request of the process waits that long for its next
turn: a write's acknowledgement among them, once per step it takes through the event loop. So
the loops over subscribers and connections check a `Slice` as they go, and give the event loop
a turn once `SLICE_S` of work is done: a request waits about one slice per loop turn, whatever
the number of subscribers, and the fan-out as a whole costs the same.
"""

from __future__ import annotations

import asyncio
import time

SLICE_S = 0.004  # work done between two turns of the event loop
CHECK_EVERY = 32  # items between two looks at the clock (one item is ~1-10 us)


class Slice:
    """The time budget of one stretch of work without a yield."""

    __slots__ = ("_count", "_until")

    def __init__(self) -> None:
        self._count = 0
        self._until = time.perf_counter() + SLICE_S

    def spent(self) -> bool:
        """Call once per item: whether the budget is used up (yield, then `renew`)."""
        self._count += 1
        if self._count < CHECK_EVERY:
            return False
        self._count = 0
        return time.perf_counter() >= self._until

    def renew(self) -> None:
        self._count = 0
        self._until = time.perf_counter() + SLICE_S

    async def pause(self) -> None:
        """Give the event loop one turn, then start a new budget."""
        await asyncio.sleep(0)
        self.renew()
