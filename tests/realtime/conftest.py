"""The realtime tests' server: the real app under a real uvicorn, in this process and event loop
(so the server's memory can be read from /proc/self/status), on a free port of 127.0.0.1, over a
fresh database per test. `serve(**overrides)` starts one with realtime limits changed; `live` is
one with the defaults. REST goes through httpx over TCP; WebSockets through `WsClient`."""

from __future__ import annotations

import asyncio
import itertools
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn

from baas.app import create_app
from baas.config import Settings
from baas.context import AppContext
from tests.conftest import SERVICE_KEY
from tests.realtime.clients import RawWs, WsClient

ADMIN = {"Authorization": f"Bearer {SERVICE_KEY}"}
ANON: dict[str, str] = {}  # REST as a visitor: no credentials
PASSWORD = "correct horse battery staple"
PUBLIC_URL = "http://realtime.test"
_emails = itertools.count()
_settles = itertools.count()
SYNC = "settle_marks"  # a collection added to every schema applied with `Live.apply`
SYNC_COLLECTION = {"fields": {"note": "text"}, "rules": {"list": "", "view": ""}}


@dataclass
class User:
    id: str
    email: str
    token: str
    refresh_token: str
    expires_at: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Live:
    """A running server: its settings, context, REST clients and WebSocket factory."""

    settings: Settings
    ctx: AppContext
    port: int
    rest: httpx.AsyncClient  # no credentials unless a request passes headers
    stack: AsyncExitStack
    realtime: Any = None  # the app's realtime service (its hub knows the connections)
    _open_sign_up: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/realtime"

    # -- WebSockets ----------------------------------------------------------------------------

    async def connect(self, token: str | None = None, *, auto_pong: bool = True) -> WsClient:
        """A WebSocket client (closed at teardown), authenticated with `token` if given."""
        ws = await WsClient.open(self.ws_url, auto_pong=auto_pong)
        self.stack.push_async_callback(ws.close)
        if token is not None:
            await ws.request({"type": "auth", "token": token}, "auth_ok")
        return ws

    async def raw(self, rcvbuf: int | None = None) -> RawWs:
        raw = await RawWs.open("127.0.0.1", self.port, rcvbuf=rcvbuf)
        self.stack.callback(raw.close)
        return raw

    # -- REST ----------------------------------------------------------------------------------

    async def apply(self, document: dict[str, Any]) -> None:
        """Apply a schema document (plus the `settle` collection)."""
        collections = {**document["collections"], SYNC: SYNC_COLLECTION}
        response = await self.rest.post(
            "/api/admin/schema/apply",
            json={"document": {**document, "collections": collections}},
            headers=ADMIN,
        )
        assert response.status_code == 200, response.text

    async def settle(self, ws: WsClient) -> None:
        """Return once the server has fanned out every change committed so far (a marker
        written now has reached `ws`), so a subscription made next starts after all of them.
        Needed before subscribing to records written just before: a write is acknowledged
        when committed, and may reach the server's hub a moment later."""
        sub = f"settle-{next(_settles)}"
        marker = str(uuid.uuid4())
        await ws.subscribe(sub, SYNC, record=marker)
        await self.create(SYNC, {"id": marker})
        await ws.change_for(sub)
        await ws.request({"type": "unsubscribe", "id": sub}, "unsubscribed", id=sub)

    async def create(
        self, collection: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        response = await self.rest.post(
            f"/api/collections/{collection}/records",
            json=body,
            headers=ADMIN if headers is None else headers,
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def update(
        self,
        collection: str,
        id: str,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await self.rest.patch(
            f"/api/collections/{collection}/records/{id}",
            json=body,
            headers=ADMIN if headers is None else headers,
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def delete(self, collection: str, id: str, headers: dict[str, str] | None = None) -> None:
        response = await self.rest.delete(
            f"/api/collections/{collection}/records/{id}",
            headers=ADMIN if headers is None else headers,
        )
        assert response.status_code == 204, response.text

    async def get(
        self,
        collection: str,
        id: str,
        headers: dict[str, str] | None = None,
        **params: str,
    ) -> dict[str, Any]:
        response = await self.rest.get(
            f"/api/collections/{collection}/records/{id}",
            params=params,
            headers=ADMIN if headers is None else headers,
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def batch(self, operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        response = await self.rest.post(
            "/api/batch", json={"operations": operations}, headers=ADMIN, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()["results"]  # type: ignore[no-any-return]

    async def user(self, name: str = "user", **fields: Any) -> User:
        """A new signed-in user (sign-up without email verification)."""
        if not self._open_sign_up:
            response = await self.rest.patch(
                "/api/admin/settings", json={"auth.require_verification": False}, headers=ADMIN
            )
            assert response.status_code == 200, response.text
            self._open_sign_up = True
        email = f"{name}{next(_emails)}@example.com"
        response = await self.rest.post(
            "/api/auth/sign-up", json={"email": email, "password": PASSWORD, **fields}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return User(
            id=body["user"]["id"],
            email=email,
            token=body["access_token"],
            refresh_token=body["refresh_token"],
            expires_at=body["expires_at"],
        )

    async def sign_in(self, user: User) -> User:
        """A second session (a new access token) for `user`."""
        response = await self.rest.post(
            "/api/auth/sign-in", json={"email": user.email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return User(
            user.id, user.email, body["access_token"], body["refresh_token"], body["expires_at"]
        )


def free_socket() -> socket.socket:
    # proto given explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every response waits out a delayed ACK (40 ms a request)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def live_server(settings: Settings, ws: str = "websockets-sansio") -> AsyncIterator[Live]:
    """The app under uvicorn (`ws`: its WebSocket implementation) in this event loop until the
    block ends."""
    sock = free_socket()
    port = int(sock.getsockname()[1])
    # Instances of one install share their public URL (the issuer of its access tokens).
    settings = settings.replace(port=port, public_url=settings.public_url or PUBLIC_URL)
    app = create_app(settings)
    lifespan_state: dict[str, Any] = {}

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            nonlocal lifespan_state
            lifespan_state = scope["state"]  # the app puts its context there at start-up
        await app(scope, receive, send)

    config = uvicorn.Config(
        asgi,
        host="127.0.0.1",
        port=port,
        ws=ws,
        ws_per_message_deflate=False,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the server stopped during start-up")
                await asyncio.sleep(0.01)
        async with (
            AsyncExitStack() as stack,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as rest,
        ):
            yield Live(
                settings, lifespan_state["ctx"], port, rest, stack, lifespan_state["realtime"]
            )
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 20)
        finally:
            sock.close()


Serve = Callable[..., Awaitable[Live]]


@pytest.fixture
async def serve(settings: Settings) -> AsyncIterator[Serve]:
    """Start servers on this test's database: `await serve(realtime_max_queued_bytes=...)`
    (`ws=` picks uvicorn's WebSocket implementation)."""
    async with AsyncExitStack() as stack:

        async def start(ws: str = "websockets-sansio", **overrides: Any) -> Live:
            server = live_server(settings.replace(**overrides), ws)
            return await stack.enter_async_context(server)

        yield start


@pytest.fixture
async def live(serve: Serve) -> Live:
    return await serve()


def vm_rss_bytes() -> int:
    """This process's resident set size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")
