"""Hypothesis properties over the in-process app: hypothesis runs in a worker thread and hands
each example back to the test's event loop, where the app, its pool and its client live."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

T = TypeVar("T")


async def for_all(
    strategy: st.SearchStrategy[T],
    check: Callable[[T], Awaitable[None]],
    *,
    max_examples: int = 25,
) -> None:
    """Run the async `check` on `max_examples` examples of `strategy` (shrinking failures)."""

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def property_(example: T) -> None:
        ran.append(None)
        anyio.from_thread.run(check, example)

    ran: list[None] = []
    await anyio.to_thread.run_sync(property_)
    assert ran, "hypothesis ran no example"
