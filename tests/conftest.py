"""Test fixtures: a real PostgreSQL (BAAS_TEST_DATABASE_URL, or an embedded cluster started once
per run), a fresh database per test cloned from a migrated template, and the app in-process."""

from __future__ import annotations

import asyncio
import itertools
import os
import shlex
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from baas.app import create_app, prepare
from baas.auth.bearer import authenticate
from baas.auth.identity import Identity
from baas.config import Settings
from baas.context import AppContext
from baas.db.embedded import EmbeddedPostgres
from baas.db.pool import Database, PoolOptions

SERVICE_KEY = "baas_sk_test_0123456789abcdefghijklmnopqrstuvwxyz"
SECRET_KEY = "k3Y-f0r-T3sts-only-9f8e7d6c5b4a3210-XyZ"  # every test server of a run shares it
# BAAS_OUTBOUND_ALLOW_PRIVATE for tests whose fake third parties (OpenID provider, FCM) listen on
# 127.0.0.1: they set it; the rest keep the default, refusing every internal address.
LOCAL_NETWORKS = ("127.0.0.0/8",)
_counter = itertools.count()
_created: list[str] = []


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A PostgreSQL server URL whose role may create databases."""
    external = os.environ.get("BAAS_TEST_DATABASE_URL")
    if external:
        yield external
        return
    directory = Path(tempfile.mkdtemp(prefix="baas-test-pg-"))
    pg = EmbeddedPostgres(directory)
    pg.start()
    try:
        yield pg.url
    finally:
        pg.stop(discard=True)
        # Thousands of files: delete them after pytest has reported, not before.
        subprocess.run(["sh", "-c", f"rm -rf {shlex.quote(str(directory))} &"], check=False)


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    """A migrated database every test database is cloned from."""
    name = f"baas_tpl_{os.getpid()}"
    admin_url = with_database(pg_server_url, "postgres")
    asyncio.run(_admin(admin_url, f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"))

    async def migrate_template() -> None:
        db = await Database.open(
            with_database(pg_server_url, name), PoolOptions(min_size=1, max_size=2)
        )
        try:
            await prepare(db)
        finally:
            await db.close()

    asyncio.run(migrate_template())
    yield name
    if os.environ.get("BAAS_TEST_DATABASE_URL"):  # an embedded cluster is simply deleted
        asyncio.run(
            _admin(
                admin_url, *(f"DROP DATABASE IF EXISTS {d} WITH (FORCE)" for d in [*_created, name])
            )
        )


def new_database(pg_server_url: str, template_db: str) -> str:
    """Create a fresh, migrated, empty database; its URL."""
    name = f"baas_t_{os.getpid()}_{next(_counter)}"
    admin_url = with_database(pg_server_url, "postgres")
    asyncio.run(_admin(admin_url, f"CREATE DATABASE {name} TEMPLATE {template_db}"))
    _created.append(name)
    return with_database(pg_server_url, name)


def settings_for(database_url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        db_pool_min=1,
        db_pool_max=4,
        access_log=False,
        service_key=SERVICE_KEY,
        secret_key=SECRET_KEY,
    )


@pytest.fixture
def database_url(pg_server_url: str, template_db: str) -> str:
    """A fresh, migrated, empty database for this test."""
    return new_database(pg_server_url, template_db)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return settings_for(database_url, tmp_path / "data")


def asgi_with_state(app: Any, state: dict[str, Any]) -> Any:
    """The app as a server would run it: lifespan state copied into each request's scope."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app({**scope, "state": dict(state)}, receive, send)

    return wrapped


@dataclass
class RunningApp:
    asgi: Any
    ctx: AppContext


TEST_USER = "test-user:"  # Bearer test-user:<uuid> acts as that user (until auth tokens exist)


def test_authenticate(scope: Any, header: str | None) -> Identity:
    """The real bearer authentication, plus minted user identities for tests."""
    if header and header.startswith(f"Bearer {TEST_USER}"):
        return Identity("user", id=header.removeprefix(f"Bearer {TEST_USER}"))
    return authenticate(scope, header)


def as_user(user_id: str) -> dict[str, str]:
    """Headers that make a request act as the user with this id."""
    return {"Authorization": f"Bearer {TEST_USER}{user_id}"}


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[RunningApp]:
    """The app with its lifespan running (pool, migrations, schema cache, LISTEN)."""
    application = create_app(settings, authenticate=test_authenticate)
    async with application.router.lifespan_context(application) as state:
        yield RunningApp(asgi_with_state(application, state), state["ctx"])


@pytest.fixture
def ctx(app: RunningApp) -> AppContext:
    return app.ctx


@pytest.fixture
async def client(app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The same client, authenticated with the service key."""
    client.headers["Authorization"] = f"Bearer {SERVICE_KEY}"
    return client


@pytest.fixture(scope="module")
def module_settings(
    pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings for a database shared by a module's tests."""
    database = new_database(pg_server_url, template_db)
    return settings_for(database, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
async def module_app(module_settings: Settings) -> AsyncIterator[RunningApp]:
    """One app and database shared by a module's tests (for scenario tables whose rows do not
    depend on each other): creating a database per row would dominate the suite's run time."""
    application = create_app(module_settings, authenticate=test_authenticate)
    async with application.router.lifespan_context(application) as state:
        yield RunningApp(asgi_with_state(application, state), state["ctx"])


@pytest.fixture(scope="module")
async def module_admin(module_app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client on `module_app`, authenticated with the service key."""
    transport = httpx.ASGITransport(app=module_app.asgi)
    headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as c:
        yield c


async def apply_schema(
    client: httpx.AsyncClient, document: dict[str, Any], allow_destructive: bool = False
) -> dict[str, Any]:
    response = await client.post(
        "/api/admin/schema/apply",
        json={"document": document, "allow_destructive": allow_destructive},
        headers={"Authorization": f"Bearer {SERVICE_KEY}"},
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def anon(app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    """A second client on the same app that never sends credentials (`client` is shared with
    `admin`, so once a test asks for `admin` every request through `client` is authenticated)."""
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
