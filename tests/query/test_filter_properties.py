"""Properties of the filter language over HTTP, on the seeded golden database (hypothesis).

Whatever a client sends as `filter`, the list endpoint answers 200 or a 400 of the filter's own
(`invalid_filter`, or `invalid_parameter` for the query string): never a 500, and never an error
PostgreSQL raised while running the statement (`invalid_value` and the like), which would mean a
filter was accepted that the database then could not evaluate. Random bodies for create and
update (through rules that read `body.*`) never cause a 500 either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio.from_thread
import anyio.to_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SERVICE_KEY, as_user
from tests.query import golden_cases as g
from tests.query.golden_cases import seeded

__all__ = ["seeded"]  # a fixture

T = TypeVar("T")
URL = "/api/collections/posts/records"
FILTER_ERRORS = {"invalid_filter", "invalid_parameter"}

# Values by kind: fields, paths and functions of the golden schema's posts (and what they reach).
VALUES: dict[str, list[str]] = {
    "integer": ["views", "abs(views)", "views + 1", "-views", "length(title)", "views * 2"],
    "number": ["score", "abs(score)", "score / 2", "views + score"],
    "text": ["title", "site", "contact", "kind", "lower(title)", "trim(upper(title))"],
    "bool": ["published"],
    "datetime": ["published_at", "created", "updated", "now()", "now() - interval '7 days'"],
    "date": ["day", "current_date"],
    "json": ["meta", "meta.x", "meta.a.b", "meta.n"],
    "uuid": ["id", "author", "best", "author.id", "auth.id", "auth.team", "author.team.lead.id"],
    "related text": ["author.name", "readers.name", "author.team.name", "best.text", "auth.name"],
}
KINDS = list(VALUES)
LISTS = {"tags": "text", "readers": "uuid"}
ORDERED = ["=", "!=", "<>", "<", "<=", ">", ">=", "IS DISTINCT FROM", "IS NOT DISTINCT FROM"]
OTHER_NAMES = ["token", "xmin", "nope", "body.title", "auth.password_hash", "author.team.secret"]


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_text = st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=12)
_numbers = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.sampled_from(["0", "-1", "2.5", "1e19", "1e400", "9223372036854775807"]),
)
_datetimes = st.one_of(
    st.datetimes().map(lambda d: quoted(d.isoformat())),
    st.datetimes().map(lambda d: f"TIMESTAMP '{d.isoformat(sep=' ')}'"),
    st.tuples(st.integers(0, 10**9), st.sampled_from(["days", "hours", "years"])).map(
        lambda t: f"now() - interval '{t[0]} {t[1]}'"
    ),
)
_dates = st.one_of(
    st.dates().map(lambda d: quoted(d.isoformat())),
    st.dates().map(lambda d: f"DATE '{d.isoformat()}'"),
    st.sampled_from(["'2026-02-30'", "current_date - interval '1 year'"]),
)
_uuids = st.one_of(
    st.sampled_from([*g.PEOPLE.values(), *g.POSTS.values(), *g.TEAMS.values()]).map(quoted),
    st.uuids().map(lambda u: quoted(str(u))),
)
LITERALS: dict[str, st.SearchStrategy[str]] = {
    "integer": _numbers,
    "number": _numbers,
    "text": _text.map(quoted),
    "bool": st.sampled_from(["true", "false", "TRUE"]),
    "datetime": _datetimes,
    "date": _dates,
    "json": st.one_of(_numbers, _text.map(quoted), st.sampled_from(["true", "false"])),
    "uuid": _uuids,
    "related text": _text.map(quoted),
}
any_literal = st.one_of(*LITERALS.values(), st.sampled_from(["NULL", "'not-a-uuid'"]))


def side(kind: str) -> st.SearchStrategy[str]:
    """Something to compare with a value of `kind`: mostly of that kind, sometimes not."""
    return st.one_of(
        LITERALS[kind],
        LITERALS[kind],
        st.sampled_from(VALUES[kind]),
        st.sampled_from(VALUES[NEIGHBOURS.get(kind, "text")]),
        any_literal,
    )


# The kind a comparison sometimes meets instead (numbers meet json, json meets text, ...).
NEIGHBOURS = {"integer": "number", "number": "json", "text": "json", "json": "related text"}


def _leaf(kind: str) -> st.SearchStrategy[str]:
    value = st.sampled_from(VALUES[kind])
    return st.one_of(
        st.tuples(value, st.sampled_from(ORDERED), side(kind)).map(" ".join),
        st.tuples(side(kind), st.sampled_from(["=", "<"]), value).map(" ".join),
        st.tuples(value, st.sampled_from(["IS NULL", "IS NOT NULL"])).map(" ".join),
        st.tuples(value, st.sampled_from(["IN", "NOT IN"]), st.lists(side(kind), max_size=4)).map(
            lambda t: f"{t[0]} {t[1]} ({', '.join(t[2])})"
        ),
        st.tuples(value, st.sampled_from(["BETWEEN", "NOT BETWEEN"]), side(kind), side(kind)).map(
            lambda t: f"{t[0]} {t[1]} {t[2]} AND {t[3]}"
        ),
        st.tuples(value, st.sampled_from(["LIKE", "ILIKE", "NOT LIKE"]), side("text")).map(
            " ".join
        ),
    )


def _list_leaf(name: str, kind: str) -> st.SearchStrategy[str]:
    items = st.lists(side(kind), min_size=1, max_size=3).map(", ".join)
    return st.one_of(
        st.tuples(st.sampled_from(["contains", "contains_any"]), items).map(
            lambda t: f"{t[0]}({name}, {t[1]})"
        ),
        side(kind).map(lambda v: f"{v} = ANY({name})"),
        st.tuples(st.sampled_from(["@>", "&&"]), items).map(
            lambda t: f"{name} {t[0]} ARRAY[{t[1]}]"
        ),
    )


comparisons = st.one_of(
    *[_leaf(kind) for kind in KINDS],
    *[_list_leaf(name, kind) for name, kind in LISTS.items()],
    st.sampled_from(["published", "published IS TRUE", "NOT published IS FALSE"]),
    st.tuples(st.sampled_from(OTHER_NAMES), any_literal).map(lambda t: f"{t[0]} = {t[1]}"),
)
expressions = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(" ".join),
        inner.map(lambda e: f"NOT ({e})"),
        inner.map(lambda e: f"({e})"),
    ),
    max_leaves=5,
)
WORDS = [
    *("AND", "OR", "NOT", "IS", "NULL", "TRUE", "IN", "BETWEEN", "ANY", "ARRAY", "(", ")", "["),
    *("]", ",", "'", '"', ";", "--", "/*", "*/", "$1", "?", "SELECT", "UNION", "FROM", "::"),
    *("now()", "interval", "DATE", "lower(", "contains(", "E'", "$$", "\\", "pg_sleep(1)", "."),
    *("=", "<", ">=", "!=", "LIKE", "+", "*", "/", "||", "@>", "&&", "%", "_"),
]
token_soup = st.lists(
    st.one_of(st.sampled_from(WORDS), st.sampled_from(VALUES["text"]), any_literal),
    min_size=1,
    max_size=10,
).map(" ".join)
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
filters = st.one_of(expressions, expressions, expressions, token_soup, any_text)


async def for_all(
    strategy: st.SearchStrategy[T],
    check: Callable[[T], Awaitable[None]],
    *,
    max_examples: int,
) -> None:
    """Run the async `check` on examples of `strategy`, the same ones on every run (hypothesis
    runs in a worker thread and hands each example to the test's event loop)."""

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def property_(example: T) -> None:
        ran.append(None)
        anyio.from_thread.run(check, example)

    ran: list[None] = []
    await anyio.to_thread.run_sync(property_)
    assert ran, "hypothesis ran no example"


@pytest.fixture(scope="module")
async def api(module_app, seeded) -> Any:
    """A client on the seeded database, sending whatever headers each request names."""
    transport = httpx.ASGITransport(app=module_app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


IDENTITIES = {
    "anonymous": {},
    "bob": as_user(g.PEOPLE["bob"]),
    "service key": {"Authorization": f"Bearer {SERVICE_KEY}"},
}


async def list_with(api: httpx.AsyncClient, text: str, headers: dict[str, str]) -> httpx.Response:
    try:
        return await api.get(URL, params={"filter": text}, headers=headers)
    except Exception as exc:  # the in-process app re-raises what it answered 500 for
        raise AssertionError(f"filter {text!r} raised {exc!r}") from exc


def assert_filter_answer(response: httpx.Response, text: str) -> None:
    assert response.status_code in (200, 400), (text, response.status_code, response.text)
    if response.status_code == 400:
        code = response.json()["error"]["code"]
        assert code in FILTER_ERRORS, f"filter {text!r} -> {response.text}"


@pytest.mark.parametrize("who", list(IDENTITIES))
async def test_random_filters_answer_200_or_a_filter_error(api, who: str) -> None:
    async def check(text: str) -> None:
        assert_filter_answer(await list_with(api, text, IDENTITIES[who]), text)

    await for_all(filters, check, max_examples=60)


async def test_accepted_filters_only_narrow_the_list_rule(api) -> None:
    """Whatever a filter says, bob sees no post outside his list rule (published or his own)."""
    response = await api.get(URL, headers=IDENTITIES["service key"], params={"per_page": 500})
    everything = response.json()["items"]
    allowed = {
        p["id"] for p in everything if p["published"] is True or p["author"] == g.PEOPLE["bob"]
    }

    async def check(text: str) -> None:
        response = await list_with(api, text, IDENTITIES["bob"])
        assert_filter_answer(response, text)
        if response.status_code == 200:
            page = response.json()
            assert {p["id"] for p in page["items"]} <= allowed, text
            assert page["total"] <= len(allowed), text

    await for_all(expressions, check, max_examples=40)


# -- random bodies -----------------------------------------------------------------------------

FIELDS = [f.name for f in g.schema().collection("posts").fields] + ["id", "created", "nope"]
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
        st.sampled_from(["2026-01-31", "2026-01-31T12:00:00Z", "a", "\x00", "not-a-uuid"]),
        st.sampled_from([g.PEOPLE["bob"], g.PEOPLE["ann"], g.POSTS["p1"], g.COMMENT]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)
WRITE_ANSWERS = {200, 201, 400, 403, 404, 409}


async def test_random_bodies_never_cause_a_server_error(api) -> None:
    """bob's writes go through the create rule (body.author = auth.id) and the update rule
    (author = auth.id AND body.author = author), which bind body.* from whatever was sent."""
    bob = IDENTITIES["bob"]
    mine = g.POSTS["p2"]  # authored by bob

    async def check(body: dict[str, Any]) -> None:
        for method, url in (("POST", URL), ("PATCH", f"{URL}/{mine}"), ("PUT", f"{URL}/{mine}")):
            try:
                response = await api.request(method, url, json=body, headers=bob)
            except Exception as exc:
                raise AssertionError(f"{method} {body!r} raised {exc!r}") from exc
            assert response.status_code in WRITE_ANSWERS, (method, body, response.text)
            if response.status_code == 201 and method == "POST":
                assert response.json()["author"] == g.PEOPLE["bob"], (body, response.text)

    await for_all(bodies, check, max_examples=40)


# -- filters PostgreSQL cannot evaluate ------------------------------------------------------------

UNEVALUABLE = [
    "views / 0 = 1",  # division by zero (22012)
    "score / 0 > 1",
    "views * 9223372036854775807 > 1",  # bigint overflow (22003)
    "abs(-9223372036854775808) > 0",
    "score * 1e308 > 1",  # double precision overflow
    "published_at > now() - interval '99999999 years'",  # timestamp out of range (22008)
    "day < current_date + interval '999999 years'",
    "views = 1e19",  # a float beyond bigint, bound as a bigint
    "views IN (1e19)",
    "meta.x = 99999999999999999999999",  # an integer JSON cannot encode
]


@pytest.mark.parametrize("text", UNEVALUABLE)
async def test_filters_the_database_cannot_evaluate_are_filter_errors(api, text: str) -> None:
    """A filter PostgreSQL cannot evaluate on the seeded rows is either evaluated some other way
    or refused as the client's `invalid_filter`: never a database error (`invalid_value`)."""
    response = await list_with(api, text, IDENTITIES["bob"])
    assert_filter_answer(response, text)
