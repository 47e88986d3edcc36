"""Every request is ONE statement, rules included: a list with its rule, a filter through
relations, a sort through a relation, expands and the total goes to PostgreSQL as a single
statement; so do get, create, update, upsert and delete. Refusals send none.

Statements are counted where they leave the app: asyncpg's query logger on every connection the
pool hands out while a request runs (after one warm-up request, so asyncpg's one-off type
introspection is not counted).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from baas.db import bells
from tests.conftest import SERVICE_KEY, as_user
from tests.query import golden_cases as g
from tests.query.golden_cases import seeded

__all__ = ["seeded"]  # a fixture

URL = "/api/collections/posts/records"
BOB = as_user(g.PEOPLE["bob"])
ADMIN = {"Authorization": f"Bearer {SERVICE_KEY}"}


# after a write commits (apart from it): the realtime pump reads the log, the bells notify
APART = {"SELECT baas.change_tick()", "SELECT * FROM baas.read_changes($1, $2)", bells.NOTIFY_SQL}


@contextlib.asynccontextmanager
async def statements(ctx: Any) -> AsyncIterator[list[str]]:
    """The SQL of every statement sent through the app's pool inside the block."""
    pool = ctx.db.pool
    seen: list[str] = []
    hooked: list[Any] = []
    acquire = pool.acquire

    def log(record: Any) -> None:
        if record.query not in APART:
            seen.append(record.query)

    async def acquire_logged() -> Any:
        conn = await acquire()
        if conn not in hooked:
            conn.add_query_logger(log)
            hooked.append(conn)
        return conn

    pool.acquire = acquire_logged
    try:
        yield seen
        for _ in range(3):  # the logger is called soon after each query, not during it
            await asyncio.sleep(0)
    finally:
        del pool.acquire
        for conn in hooked:
            conn.remove_query_logger(log)


@pytest.fixture(scope="module")
async def api(module_app, seeded) -> Any:
    transport = httpx.ASGITransport(app=module_app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def one_statement(ctx: Any, api: httpx.AsyncClient, *request: Any, **kw: Any) -> Any:
    """Send the request twice (warm-up, then counted); the counted one's response and SQL."""
    await api.request(*request, **kw)
    async with statements(ctx) as seen:
        response = await api.request(*request, **kw)
    assert len(seen) == 1, seen
    return response, seen[0]


async def test_a_list_with_everything_is_one_statement(api, seeded) -> None:
    params = {
        "filter": "author.team.name = 'red' OR author = auth.id OR readers.name = 'bob'",
        "sort": "-author.name,-views",
        "expand": "author.team,readers",
        "per_page": "2",
    }
    response, sql = await one_statement(seeded, api, "GET", URL, params=params, headers=BOB)
    assert response.status_code == 200, response.text
    page = response.json()
    # bob's list rule lets him see Hello (published), '  spaced  ' (published, his) and
    # hello world (his draft); all three pass the filter. Bob's posts come first, by views.
    assert page["total"] == 3
    assert [p["title"] for p in page["items"]] == ["  spaced  ", "hello world"]
    assert page["next_cursor"] is not None
    spaced = page["items"][0]["expand"]
    assert spaced["author"]["expand"]["team"]["name"] == "hidden"  # teams' view rule is public
    assert [r["name"] for r in spaced["readers"]] == ["cat"]
    for part in ("count(*)", "LATERAL", "EXISTS", "json_build_object", '"published"'):
        assert part.lower() in sql.lower(), part


async def test_every_page_of_a_cursor_walk_is_one_statement(api, seeded) -> None:
    params = {"filter": "views IS NOT NULL", "sort": "author.name,-views", "per_page": "1"}
    titles = []
    for _ in range(5):
        response, _sql = await one_statement(seeded, api, "GET", URL, params=params, headers=BOB)
        page = response.json()
        titles += [p["title"] for p in page["items"]]
        if page["next_cursor"] is None:
            break
        params = {**params, "cursor": page["next_cursor"]}
    assert titles == ["Hello", "  spaced  ", "hello world"]


async def test_get_create_update_upsert_delete_are_one_statement_each(api, seeded) -> None:
    mine = g.POSTS["p2"]
    response, _ = await one_statement(
        seeded, api, "GET", f"{URL}/{g.POSTS['p1']}", params={"expand": "author.team,readers"}
    )
    assert response.status_code == 200, response.text
    response, sql = await one_statement(
        seeded, api, "POST", URL, json={"title": "new", "author": g.PEOPLE["bob"]}, headers=BOB
    )
    assert response.status_code == 201, response.text
    assert "baas.check_rule" in sql.lower()
    response, _ = await one_statement(
        seeded, api, "PATCH", f"{URL}/{mine}", json={"author": g.PEOPLE["bob"]}, headers=BOB
    )
    assert response.status_code == 200, response.text
    response, _ = await one_statement(
        seeded, api, "PUT", f"{URL}/{mine}", json={"author": g.PEOPLE["bob"]}, headers=BOB
    )
    assert response.status_code == 200, response.text
    created = (await api.post(URL, json={"title": "doomed"}, headers=ADMIN)).json()
    async with statements(seeded) as seen:
        response = await api.delete(f"{URL}/{created['id']}", headers=ADMIN)
    assert response.status_code == 204, response.text
    assert len(seen) == 1, seen


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        (URL, {"filter": "token = 't1'"}, 400),  # a refused filter
        (URL, {"filter": "views > 1; DROP TABLE posts"}, 400),
        (URL, {"sort": "tags"}, 400),
        ("/api/collections/comments/records", {}, 403),  # comments' list rule is locked
    ],
)
async def test_refusals_send_no_statement(api, seeded, path, params, status) -> None:
    async with statements(seeded) as seen:
        response = await api.get(path, params=params, headers=BOB)
    assert response.status_code == status, response.text
    assert seen == []


async def test_a_locked_delete_sends_no_statement(api, seeded) -> None:
    async with statements(seeded) as seen:
        response = await api.delete(f"{URL}/{g.POSTS['p2']}", headers=BOB)
    assert response.status_code == 403, response.text
    assert seen == []
