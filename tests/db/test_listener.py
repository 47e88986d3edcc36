"""The LISTEN connection: notifications reach handlers, and a handler that fails (a pool
exhausted for a moment) is retried rather than leaving the process on stale state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

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


async def test_a_reconnect_that_fails_half_way_leaves_no_second_listening_connection(
    database_url: str,
) -> None:
    name = f"listener-{uuid.uuid4().hex[:8]}"
    listener = Listener(database_url, PoolOptions(min_size=1, max_size=1, application_name=name))
    calls: list[str] = []
    connects = 0

    async def reload_after_reconnect() -> None:
        nonlocal connects
        connects += 1
        if connects == 2:  # the first reconnect fails after its LISTENs were in place
            raise RuntimeError("reload failed")

    async def handler(payload: str) -> None:
        calls.append(payload)

    listener.subscribe("baas_test", handler)
    listener.on_connect(reload_after_reconnect)
    await listener.start()
    db = await Database.open(database_url, PoolOptions(min_size=1, max_size=1))
    try:
        await db.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            name,
        )
        await _until(lambda: connects >= 3)
        await db.execute("SELECT pg_notify('baas_test', 'once')")
        await _until(lambda: bool(calls))
        count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
        assert await db.fetchval(count, name) == 1
        assert calls == ["once"]
    finally:
        await db.close()
        await listener.stop()


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("condition not met within 10 s")
