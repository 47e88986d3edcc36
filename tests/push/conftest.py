"""Push tests: the server with its job worker, pointed at local APNs and FCM servers that speak
the real protocols (the real aioapns, pyfcm and google-auth talk to them)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from baas.app import create_app
from baas.config import Settings
from tests.conftest import (
    LOCAL_NETWORKS,
    SERVICE_KEY,
    RunningApp,
    as_user,
    asgi_with_state,
    test_authenticate,
)
from tests.push.apns_server import FakeApns, make_apns_key
from tests.push.fake_apps import BUNDLE_ID, KEY_ID, TEAM_ID, apps_setting
from tests.push.fcm_server import FakeFcm

PROJECT_ID = "acme-chat"
ADMIN = {"Authorization": f"Bearer {SERVICE_KEY}"}


@pytest.fixture(scope="session")
def apns_key() -> tuple[str, bytes]:
    return make_apns_key()


@pytest.fixture
def fake_apns(apns_key: tuple[str, bytes]) -> Iterator[FakeApns]:
    fake = FakeApns(team_id=TEAM_ID, key_id=KEY_ID, public_key_pem=apns_key[1], topics={BUNDLE_ID})
    with fake:
        yield fake


@pytest.fixture
def fake_fcm() -> Iterator[FakeFcm]:
    with FakeFcm(project_id=PROJECT_ID) as fake:
        yield fake


def push_settings_for(settings: Settings, apns: FakeApns, fcm: FakeFcm, **more: Any) -> Settings:
    return settings.replace(
        apns_host=f"{apns.host}:{apns.port}",
        push_ca_file=Path(apns.ca_file),
        fcm_url=fcm.endpoint_base,
        jobs_poll_s=0.05,
        jobs_backoff_base_s=0.05,
        jobs_backoff_cap_s=0.3,
        push_timeout_s=3.0,
        outbound_allow_private=LOCAL_NETWORKS,  # the fake FCM (token_uri, sends) is local
        **more,
    )


@pytest.fixture
async def push_app(
    settings: Settings, fake_apns: FakeApns, fake_fcm: FakeFcm, apns_key: tuple[str, bytes]
) -> AsyncIterator[RunningApp]:
    application = create_app(
        push_settings_for(settings, fake_apns, fake_fcm), authenticate=test_authenticate
    )
    async with application.router.lifespan_context(application) as state:
        running = RunningApp(asgi_with_state(application, state), state["ctx"])
        async with client_for(running) as c:
            configured = await c.patch(
                "/api/admin/settings",
                json={"push.apps": apps_setting(apns_key[0], fake_fcm)},
                headers=ADMIN,
            )
            assert configured.status_code == 200, configured.text
            await wait_setting(running)
        yield running


@pytest.fixture
async def bare_app(settings: Settings) -> AsyncIterator[RunningApp]:
    """The server with its job worker and no `push.apps` yet (no fakes needed)."""
    fast = settings.replace(
        jobs_poll_s=0.05, jobs_backoff_base_s=0.05, jobs_backoff_cap_s=0.3, push_timeout_s=3.0
    )
    application = create_app(fast, authenticate=test_authenticate)
    async with application.router.lifespan_context(application) as state:
        yield RunningApp(asgi_with_state(application, state), state["ctx"])


@pytest.fixture
async def bare(bare_app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(bare_app) as c:
        yield c


async def set_apps(api: httpx.AsyncClient, apps: dict[str, Any] | None) -> None:
    """Set `push.apps` (None: unset); the instance that answers reloads it before answering."""
    response = await api.patch("/api/admin/settings", json={"push.apps": apps}, headers=ADMIN)
    assert response.status_code == 200, response.text


async def wait_setting(app: RunningApp) -> None:
    async with asyncio.timeout(5):
        while not app.ctx.runtime.is_set("push.apps"):  # noqa: ASYNC110 - reloaded on a NOTIFY
            await asyncio.sleep(0.01)


async def idle(app: RunningApp) -> None:
    """Every push job the writes so far queued (trigger, fan-out, delivery) has finished."""
    async with asyncio.timeout(10):
        while await app.ctx.db.fetchval(  # noqa: ASYNC110 - the worker runs in the server
            "SELECT count(*) FROM baas.jobs WHERE kind LIKE 'push.%'"
            " AND status NOT IN ('done', 'dead', 'cancelled')"
        ):
            await asyncio.sleep(0.05)


def client_for(app: RunningApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app.asgi)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def api(push_app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(push_app) as c:
        yield c


def ios_token() -> str:
    return secrets.token_hex(32)


def android_token() -> str:
    return "fcm" + secrets.token_urlsafe(60)


async def register(
    api: httpx.AsyncClient, user: str | None, platform: str, token: str, **more: Any
) -> dict[str, Any]:
    headers = as_user(user) if user else {}
    app_id = BUNDLE_ID if platform == "ios" else "com.acme.chat"
    body = {"platform": platform, "token": token, "app_id": app_id, **more}
    response = await api.post("/api/push/devices", json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


async def send(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await api.post("/api/push/send", json=body, headers=ADMIN)
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


async def settled(api: httpx.AsyncClient, message_id: str, timeout_s: float = 20) -> dict[str, Any]:
    """The message once nothing of it is pending any more."""
    async with asyncio.timeout(timeout_s):
        while True:
            m = (await api.get(f"/api/push/messages/{message_id}", headers=ADMIN)).json()
            if m["status"] not in ("scheduled", "sending"):
                return m  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)


def new_user() -> str:
    return str(uuid.uuid4())
