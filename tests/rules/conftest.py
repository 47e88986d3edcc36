"""Fixtures for the authorization tests: one bare client per module (each request says who it
acts as through `blog.headers`) on a database holding the seeded blog."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import RunningApp
from tests.rules.blog import seed


@pytest.fixture(scope="module")
async def module_client(module_app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client on `module_app` that sends no credentials of its own."""
    transport = httpx.ASGITransport(app=module_app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="module")
async def blog(module_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """`module_client` on a database holding the seeded blog."""
    await seed(module_client)
    return module_client
