"""CORS answers only the configured origins and never shares credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from baas.app import create_app
from baas.config import Settings
from tests.conftest import asgi_with_state

ALLOWED = "https://app.example"


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        transport = httpx.ASGITransport(app=asgi_with_state(app, state))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def allowlisted(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(settings.replace(cors_origins=(ALLOWED,))):
        yield client


@pytest.fixture
async def anyone(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(settings.replace(cors_origins=("*",))):
        yield client


def _preflight(origin: str) -> dict[str, Any]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_preflight_from_an_allowed_origin(allowlisted: httpx.AsyncClient) -> None:
    response = await allowlisted.options(
        "/api/collections/posts/records", headers=_preflight(ALLOWED)
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in response.headers


async def test_other_origins_get_no_cors_headers(allowlisted: httpx.AsyncClient) -> None:
    evil = "https://evil.example"
    preflight = await allowlisted.options("/api/health", headers=_preflight(evil))
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    simple = await allowlisted.get("/api/health", headers={"Origin": evil})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers


async def test_simple_request_from_an_allowed_origin(allowlisted: httpx.AsyncClient) -> None:
    response = await allowlisted.get("/api/health", headers={"Origin": ALLOWED})
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


async def test_wildcard_never_reflects_with_credentials(anyone: httpx.AsyncClient) -> None:
    response = await anyone.get("/api/health", headers={"Origin": "https://whoever.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


async def test_no_cors_unless_configured(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health", headers={"Origin": ALLOWED})
    assert "access-control-allow-origin" not in response.headers
