"""`baas jobs` and `baas push`, run as real processes against the test's database."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg

from tests.cli.conftest import Baas


def sql(database_url: str, statement: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(statement, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_jobs_list_show_retry_and_cancel(baas: Baas, database_url: str) -> None:
    [dead] = sql(
        database_url,
        "INSERT INTO baas.jobs (kind, status, attempts, last_error, finished)"
        " VALUES ('push.deliver', 'dead', 10, 'APNs said 500', now()) RETURNING id",
    )
    listed = baas("jobs", "list", "--status", "dead")
    assert listed.code == 0, listed.text
    assert (
        "dead: 1" in listed.out and "push.deliver" in listed.out and "APNs said 500" in listed.out
    )
    shown = baas("jobs", "show", str(dead["id"]))
    assert json.loads(shown.out)["last_error"] == "APNs said 500"
    assert baas("jobs", "retry", str(dead["id"])).code == 0
    assert baas("jobs", "list", "--status", "queued").out.count("push.deliver") == 1
    assert baas("jobs", "cancel", str(dead["id"])).code == 0
    again = baas("jobs", "cancel", str(dead["id"]))
    assert again.code == 1 and "is cancelled" in again.err
    missing = baas("jobs", "show", "424242")
    assert missing.code == 1 and "no job 424242" in missing.err
    bad = baas("jobs", "list", "--status", "sleeping")
    assert bad.code == 1 and "status must be one of" in bad.err


def test_push_send_queues_a_message_and_status_follows_it(baas: Baas, database_url: str) -> None:
    user = str(uuid.uuid4())
    sql(
        database_url,
        "INSERT INTO baas.push_devices (id, user_id, platform, token, app_id, locale)"
        " VALUES ($1, $2, 'ios', $3, 'com.acme.chat', 'fr')",
        str(uuid.uuid4()),
        user,
        "ab" * 32,
    )
    args = (
        "push",
        "send",
        "--title",
        "Hi",
        "--body",
        "there",
        "--user",
        user,
        "--data",
        '{"a": 1}',
    )
    unconfigured = baas(*args)
    assert unconfigured.code == 1 and "no push app is configured" in unconfigured.err
    assert sql(database_url, "SELECT count(*) FROM baas.push_messages")[0][0] == 0
    assert baas("settings", "set", "push.apps", '{"dev": {"provider": "outbox"}}').code == 0
    sent = baas(*args)
    assert sent.code == 0, sent.text
    message_id = sent.out.strip()
    uuid.UUID(message_id)
    [row] = sql(database_url, "SELECT created_by, notification FROM baas.push_messages")
    assert row["created_by"].startswith("service:cli")
    assert json.loads(row["notification"])["data"] == {"a": 1}
    status = baas("push", "status", message_id)
    assert status.code == 0 and message_id in status.out and "scheduled" in status.out
    devices = baas("push", "devices", user)
    assert "ios" in devices.out and "…" + ("ab" * 4) in devices.out and "enabled" in devices.out
    bad = baas("push", "send", "--title", "x")
    assert bad.code == 1 and "users" in bad.err
    not_json = baas("push", "send", "--title", "x", "--user", user, "--data", "{")
    assert not_json.code == 2 and "--data is not JSON" in not_json.err
