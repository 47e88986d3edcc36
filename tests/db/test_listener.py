"""The LISTEN connection: notifications reach handlers, and a handler that fails (a pool
exhausted for a moment) is retried rather than leaving the process on stale state."""

from __future__ import annotations

import asyncio

import pytest

from baas.db import listener as listener_module
from baas.db.listener import Listener
from baas.db.pool import Database, PoolOptions


async def test_a_failing_handler_is_retried_until_it_succeeds(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener_module, "RETRY_DELAYS_S", (0.01, 0.01, 0.01))
    calls: list[str] = []
    done = asyncio.Event()

    async def flaky(payload: str) -> None:
        calls.append(payload)
        if len(calls) < 3:
            raise RuntimeError("pool exhausted")
        done.set()

    listener = Listener(database_url, PoolOptions(min_size=1, max_size=1))
    listener.subscribe("baas_test", flaky)
    await listener.start()
    db = await Database.open(database_url, PoolOptions(min_size=1, max_size=1))
    try:
        await db.execute("SELECT pg_notify('baas_test', 'revoked')")
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await db.close()
        await listener.stop()
    assert calls == ["revoked"] * 3
