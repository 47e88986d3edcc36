"""Injection attempts against `filter=`: each is refused, or read as the filter language (and then
only narrows what the list rule shows), or is a plain value inside a string literal. Nothing a
client writes reaches PostgreSQL as SQL: the tables are intact afterwards and nothing slept.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from hypothesis import strategies as st

from tests.conftest import SERVICE_KEY, as_user
from tests.query import golden_cases as g
from tests.query.golden_cases import seeded
from tests.query.test_filter_properties import assert_filter_answer, for_all, list_with, quoted

__all__ = ["seeded"]  # a fixture

URL = "/api/collections/posts/records"
ADMIN = {"Authorization": f"Bearer {SERVICE_KEY}"}
BOB = as_user(g.PEOPLE["bob"])

PAYLOADS = [
    "' OR 1=1 --",
    "' OR '1'='1",
    "x' OR ''1''=''1",
    "'; DROP TABLE posts; --",
    "x'); DROP TABLE posts; --",
    "' UNION SELECT password_hash FROM users --",
    "'||pg_sleep(5)||'",
    "1; SELECT pg_sleep(5)",
    "\\",
    "\\'",
    "\\' OR 1=1 --",
    "$$",
    "$$ OR 1=1 $$",
    "$tag$ OR 1=1 $tag$",
    "E'\\x27 OR 1=1 --",
    "%' OR '%'='",
    "*/ OR 1=1 /*",
    '" OR ""="',
    "')) OR ((1=1",
    "'::text OR 1=1 --",
    "\uff07 OR 1=1 --",  # fullwidth apostrophe
    "\u02bc OR 1=1 --",  # modifier letter apostrophe
    "\u2019 OR 1=1 --",  # right single quotation mark
    "' OR 1=1\u2028--",  # line separator
    "é' OR 'é'='é",
    "'" * 50,
    "x" * 3000,
    "(" * 200 + "1=1" + ")" * 200,
]


def naive(payload: str) -> str:
    """What a client pasting user input into a filter would send."""
    return f"title = '{payload}'"


@pytest.fixture(scope="module")
async def api(module_app, seeded) -> Any:
    transport = httpx.ASGITransport(app=module_app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def bob_may_see(api: httpx.AsyncClient) -> set[str]:
    everything = (await api.get(URL, headers=ADMIN, params={"per_page": 500})).json()["items"]
    return {p["id"] for p in everything if p["published"] is True or p["author"] == g.PEOPLE["bob"]}


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_a_pasted_payload_is_refused_or_only_narrows(api, payload: str) -> None:
    allowed = await bob_may_see(api)
    for text in (payload, naive(payload)):
        started = time.monotonic()
        response = await list_with(api, text, BOB)
        assert time.monotonic() - started < 3, f"{text!r} took its time: did something sleep?"
        assert_filter_answer(response, text)
        if response.status_code == 200:
            assert {p["id"] for p in response.json()["items"]} <= allowed, text


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_a_quoted_payload_is_a_plain_value(api, payload: str) -> None:
    created = await api.post(URL, json={"title": payload}, headers=ADMIN)
    assert created.status_code == 201, created.text
    response = await list_with(api, f"title = {quoted(payload)}", ADMIN)
    assert response.status_code == 200, response.text
    assert [p["id"] for p in response.json()["items"]] == [created.json()["id"]]
    response = await list_with(api, f"title = {quoted(payload + '!')}", ADMIN)
    assert response.json()["items"] == []


async def test_the_classic_tautology_is_one_string(api) -> None:
    response = await list_with(api, "title = 'x'' OR ''1''=''1'", BOB)
    assert response.status_code == 200, response.text
    assert all(p["title"] == "x' OR '1'='1" for p in response.json()["items"])
    assert response.json()["total"] == len(response.json()["items"])


async def test_any_text_in_quotes_matches_exactly_itself(api) -> None:
    async def check(title: str) -> None:
        created = await api.post(URL, json={"title": title}, headers=ADMIN)
        assert created.status_code == 201, created.text
        twins = await list_with(api, f"title = {quoted(title)}", ADMIN)
        assert twins.status_code == 200, (title, twins.text)
        items = twins.json()["items"]
        assert created.json()["id"] in {p["id"] for p in items}, title
        assert all(p["title"] == title for p in items), title

    text = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=30)
    await for_all(text, check, max_examples=40)


async def test_the_tables_are_intact(api, seeded) -> None:
    """Runs last: after every attempt above, the seeded rows and the tables are all there."""
    for name, count in (("users", 3), ("teams", 3), ("comments", 1)):
        assert await seeded.db.fetchval(f'SELECT count(*) FROM "{name}"') == count
    titles = {r["title"] for r in await seeded.db.fetch('SELECT title FROM "posts"')}
    assert {"Hello", "hello world", "Zed", "It's 100%", "  spaced  ", "under_score"} <= titles
    hashes = await seeded.db.fetch('SELECT name, password_hash FROM "users" ORDER BY name')
    assert [tuple(r) for r in hashes] == [("ann", "h-ann"), ("bob", "h-bob"), ("cat", None)]
