"""Background loops through a database outage: one line each when it begins and when it ends,
backoff in between, and never a traceback (PostgreSQL really killed and started again)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from baas.app import create_app
from baas.auth import housekeeping
from baas.auth import mail as mail_module
from baas.jobs import cron
from baas.realtime import hub as hub_module
from baas.storage import cleanup
from tests.conftest import SERVICE_KEY, asgi_with_state, settings_for
from tests.e2e.outage import own_cluster

UNTIL_S = 30.0
QUICK_S = 0.2  # every loop's interval here, so each of them meets the outage
LOOPS = (
    "LISTEN listener",
    "jobs worker",
    "cron",
    "mailer",
    "file cleaner",
    "housekeeping",
    "presence",
    "realtime change log trim",
)


async def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + UNTIL_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _lines(caplog: pytest.LogCaptureFixture, needle: str) -> dict[str, int]:
    found = dict.fromkeys(LOOPS, 0)
    for record in caplog.records:
        message = record.getMessage()
        for loop in LOOPS:
            if message.startswith(f"{loop}: {needle}"):
                found[loop] += 1
    return found


async def test_an_outage_is_one_line_per_loop_when_it_begins_and_one_when_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for module, name in (
        (housekeeping, "INTERVAL_S"),
        (cleanup, "INTERVAL_S"),
        (mail_module, "POLL_S"),
        (hub_module, "TRIM_EVERY_S"),
        (cron, "TICK_S"),
    ):
        monkeypatch.setattr(module, name, QUICK_S)
    caplog.set_level(logging.INFO)
    with own_cluster(tmp_path / "pg") as pg:
        settings = settings_for(pg.url, tmp_path / "data").replace(
            jobs_poll_s=QUICK_S, realtime_presence_timeout_s=1
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app) as state:
            ctx = state["ctx"]
            transport = httpx.ASGITransport(app=asgi_with_state(app, state))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                # with SMTP configured the mailer looks for due mail on every pass
                answer = await client.patch(
                    "/api/admin/settings",
                    json={"smtp.host": "127.0.0.1"},
                    headers={"Authorization": f"Bearer {SERVICE_KEY}"},
                )
                assert answer.status_code == 200, answer.text
            await _until(lambda: bool(ctx.runtime["smtp.host"]))
            caplog.clear()

            await asyncio.to_thread(pg.kill)
            await _until(lambda: all(_lines(caplog, "database unavailable").values()))
            # the outage lasts while the loops keep retrying (with backoff)
            await _until(lambda: ctx.background.worker.claims.outage.failures >= 4)
            await asyncio.to_thread(pg.start)
            await _until(lambda: all(_lines(caplog, "back after").values()))

    assert _lines(caplog, "database unavailable") == dict.fromkeys(LOOPS, 1)
    assert _lines(caplog, "back after") == dict.fromkeys(LOOPS, 1)
    with_traceback = [r.getMessage() for r in caplog.records if r.exc_info]
    assert not with_traceback, with_traceback
