"""`baas push outbox` and `baas init`'s development push: run as real processes. On a laptop
(the embedded database) `baas init` configures the outbox, so the README's walk-through
(register a device, send, read the outbox) works with no credentials."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from baas.app import create_app
from tests import conftest as root
from tests.cli.conftest import BAAS, Baas, Result, _env
from tests.cli.test_cli import _ok, _query
from tests.conftest import as_user, asgi_with_state, settings_for
from tests.e2e.servers import running

IOS_ONLY = '{"dev": {"provider": "outbox", "platform": "ios"}}'


async def _settled(client: httpx.AsyncClient, message_id: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            m = (await client.get(f"/api/push/messages/{message_id}")).json()
            if m["status"] not in ("scheduled", "sending"):
                return m  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)


async def test_push_outbox_lists_and_shows_what_was_kept(
    baas: Baas, database_url: str, tmp_path: Path
) -> None:
    _ok(baas("settings", "set", "push.apps", IOS_ONLY))
    user = str(uuid.uuid4())
    settings = settings_for(database_url, tmp_path / "data").replace(jobs_poll_s=0.05)
    application = create_app(settings, authenticate=root.test_authenticate)
    async with application.router.lifespan_context(application) as state:
        transport = httpx.ASGITransport(app=asgi_with_state(application, state))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://t",
            headers={"Authorization": f"Bearer {settings.service_key}"},
        ) as client:
            device = {"platform": "ios", "token": secrets.token_hex(32)}
            registered = await client.post("/api/push/devices", json=device, headers=as_user(user))
            assert registered.status_code == 201, registered.text
            await state["ctx"].db.execute(  # an Android phone from before: no app takes it now
                "INSERT INTO baas.push_devices (id, user_id, platform, token, app_id)"
                " VALUES (gen_random_uuid(), $1, 'android', $2, 'com.acme.chat')",
                user,
                "fcm" + secrets.token_urlsafe(40),
            )
            sent = _ok(baas("push", "send", "--title", "Hi", "--body", "there", "--user", user))
            message_id = sent.out.strip()
            done = await _settled(client, message_id)
    assert done["status"] == "partially_sent"
    status = _ok(baas("push", "status", message_id)).out
    assert "partially_sent" in status
    assert "failed on 1 device(s): no FCM app is configured for Android devices" in status
    listed = _ok(baas("push", "outbox")).out.splitlines()
    entry_id = listed[0].split()[0]
    assert f"ios     …{device['token'][-8:]}  user {user}" in listed[0]
    assert listed[1].strip() == "Hi — there"
    assert len(listed) == 2  # the Android phone got nothing
    assert (
        _ok(baas("push", "outbox", "--user", user, "--message", message_id)).out
        == "\n".join(listed) + "\n"
    )
    assert "empty" in _ok(baas("push", "outbox", "--user", str(uuid.uuid4()))).out
    shown = json.loads(_ok(baas("push", "outbox", "--show", entry_id)).out)
    assert shown["payload"] == {"aps": {"alert": {"title": "Hi", "body": "there"}}}
    assert shown["headers"]["apns-push-type"] == "alert" and shown["message_id"] == message_id
    bad = baas("push", "outbox", "--user", "nobody")
    assert bad.code == 2 and "--user must be an id" in bad.err
    missing = baas("push", "outbox", "--show", str(uuid.uuid4()))
    assert missing.code == 1 and "no push outbox entry" in missing.err


def test_init_leaves_a_named_database_alone_and_says_how(baas: Baas, database_url: str) -> None:
    out = _ok(baas("init")).out
    assert """baas settings set push.apps '{"dev": {"provider": "outbox"}}'""" in out
    assert _query(database_url, "SELECT count(*) FROM baas.settings")[0][0] == 0


def _laptop(tmp_path: Path, *args: str) -> Result:
    """`baas <args>` on the embedded database in tmp_path/data, as on a laptop."""
    env = {**_env("", tmp_path), "BAAS_DATABASE_URL": ""}
    done = subprocess.run(
        [BAAS, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def _pg_running(data: Path) -> bool:
    pid_file = data / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().splitlines()[0]), 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_on_a_laptop_init_then_register_send_and_read_the_outbox(tmp_path: Path) -> None:
    init = _ok(_laptop(tmp_path, "init"))
    assert "Push: the development outbox is configured" in init.out
    with running(tmp_path, {"BAAS_DATABASE_URL": "", "BAAS_JOBS_POLL_S": "0.1"}) as server:
        try:
            with server.client() as api:
                user = str(uuid.uuid4())
                token = secrets.token_hex(32)
                device = api.post(
                    "/api/push/devices", json={"platform": "ios", "token": token, "user_id": user}
                )
                assert device.status_code == 201, device.text
                message = api.post("/api/push/send", json={"users": [user], "title": "Hello"})
                assert message.status_code == 202, message.text
                deadline = time.monotonic() + 20
                while (
                    api.get(f"/api/push/messages/{message.json()['id']}").json()["status"] != "sent"
                ):
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            outbox = _ok(_laptop(tmp_path, "push", "outbox")).out
            assert f"…{token[-8:]}  user {user}" in outbox and "Hello" in outbox
            again = _ok(_laptop(tmp_path, "init", "--force")).out
            assert "push.apps is already set; left as it is" in again
        finally:
            assert server.stop(signal.SIGINT) == 0
    assert not _pg_running(tmp_path / "data")
