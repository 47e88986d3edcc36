"""A server killed (SIGKILL) in the middle of a push fan-out: a new one finishes it, every device
gets the notification, and only the sends in flight at the moment of the kill go out twice."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.servers import eventually, running
from tests.push.apns_server import FakeApns
from tests.push.conftest import BUNDLE_ID, android_token, apps_setting, ios_token, new_user
from tests.push.fcm_server import FakeFcm

pytestmark = pytest.mark.slow
DEVICES = 300


def in_flight(database_url: str) -> set[str]:
    async def query() -> set[str]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT v.token FROM baas.push_deliveries d JOIN baas.push_devices v"
                " ON v.id = d.device_id WHERE d.status = 'sending'"
            )
        finally:
            await conn.close()
        return {r["token"] for r in rows}

    return asyncio.run(query())


def test_a_killed_server_resends_only_what_was_in_flight(
    database_url: str,
    tmp_path: Path,
    fake_apns: FakeApns,
    fake_fcm: FakeFcm,
    apns_key: tuple[str, bytes],
) -> None:
    fake_apns.response_delay_s = fake_fcm.response_delay_s = 0.03
    env = {
        "BAAS_DATABASE_URL": database_url,
        "BAAS_APNS_HOST": f"{fake_apns.host}:{fake_apns.port}",
        "BAAS_PUSH_CA_FILE": fake_apns.ca_file,
        "BAAS_FCM_URL": fake_fcm.endpoint_base,
        "BAAS_OUTBOUND_ALLOW_PRIVATE": "127.0.0.0/8",  # the fake FCM is local
        "BAAS_JOBS_LEASE_S": "2",
        "BAAS_JOBS_POLL_S": "0.2",
        "BAAS_JOBS_CONCURRENCY": "2",
        "BAAS_PUSH_CONCURRENCY": "16",
        "BAAS_ACCESS_LOG": "false",
    }
    tokens = []
    with running(tmp_path, env, name="first") as first, first.client() as api:
        settings = {"push.apps": apps_setting(apns_key[0], fake_fcm)}
        assert api.patch("/api/admin/settings", json=settings).status_code == 200
        users = [new_user() for _ in range(DEVICES // 2)]
        for user in users:
            for platform, token in (("ios", ios_token()), ("android", android_token())):
                body = {"platform": platform, "token": token, "app_id": BUNDLE_ID, "user_id": user}
                assert api.post("/api/push/devices", json=body).status_code == 201
                tokens.append(token)
        message = api.post("/api/push/send", json={"users": users, "title": "hi"}).json()
        eventually(lambda: len(fake_apns.received) + len(fake_fcm.received) >= 80, timeout=30)
        first.stop(signal.SIGKILL)
    sending = in_flight(database_url)
    delivered_before = {t for t in tokens if fake_apns.count(t) or fake_fcm.count(t)}
    assert 0 < len(delivered_before) < DEVICES, "the kill came mid-batch"
    with running(tmp_path, env, name="second") as second, second.client() as api:
        deadline = time.monotonic() + 60
        while api.get(f"/api/push/messages/{message['id']}").json()["status"] != "sent":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        status = api.get(f"/api/push/messages/{message['id']}").json()
    assert status["counts"]["sent"] == DEVICES
    counts = {t: fake_apns.count(t) + fake_fcm.count(t) for t in tokens}
    assert all(n >= 1 for n in counts.values()), "every device got it"
    twice = {t for t, n in counts.items() if n > 1}
    assert twice <= sending, "only sends in flight at the kill went out again"
    assert max(counts.values()) <= 2
    assert len(sending) <= 2 * 16  # jobs x sends per job
