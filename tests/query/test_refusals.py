"""What the filter language refuses, and that each refusal names the problem and says where.

One table, checked twice: compiled directly (a FilterError with its reason and (line, column)),
and sent to the list endpoint (400 `invalid_filter` with the same message and position).
Limits that concern the expression as a whole (its length, its number of parts, emptiness) have
no single position; every other refusal points at the offending part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlglot import exp
from sqlglot.dialects.postgres import Postgres

from baas.query import FilterError, QueryLimits, parse_filter
from tests.conftest import apply_schema
from tests.query import golden_cases as g
from tests.records.scenarios import assert_error_shape

URL = "/api/collections/posts/records"
WHOLE = None  # a refusal of the whole expression: no position
ANN = g.PEOPLE["ann"]


@dataclass(frozen=True)
class Refusal:
    name: str
    filter: str
    says: str  # a part of the reason that names the problem ("": any reason will do)
    position: tuple[int, int] | None
    http: bool = True  # False: cannot travel in a URL (lone surrogates)


def nested(depth: int) -> str:
    return "(" * depth + "views = 1" + ")" * depth


REFUSALS = [
    # queries inside the expression
    Refusal("IN subquery", "views IN (SELECT 1)", "not a query", (1, 1)),
    Refusal("scalar subquery", "views = (SELECT max(views) FROM posts)", "subquery", (1, 17)),
    Refusal("subquery operand", "(SELECT 1) = 1", "subquery is not allowed", (1, 9)),
    Refusal("EXISTS", "EXISTS (SELECT 1 FROM pg_user)", "EXISTS (...) is not allowed", (1, 1)),
    Refusal("UNION", "views = 1 UNION SELECT 1", "UNION is not allowed", (1, 9)),
    Refusal("UNION ALL", "1 = 1 UNION ALL SELECT password_hash FROM users", "UNION", (1, 1)),
    Refusal("a whole query", "SELECT 1", "query is not allowed", (1, 8)),
    Refusal("LIMIT", "views = 1 LIMIT 1", "unexpected 'LIMIT'", (1, 11)),
    Refusal("unbalanced", "views = 1) OR (1 = 1", "unexpected ')': no '(' is open", (1, 10)),
    # several statements, comments
    Refusal("semicolon", "views = 1; DROP TABLE posts", "';' is not allowed", (1, 10)),
    Refusal("trailing semicolon", "views = 1;", "';' is not allowed", (1, 10)),
    Refusal("line comment", "views = 1 -- and more", "comments are not allowed", (1, 9)),
    Refusal("block comment", "views = /* x */ 1", "comments are not allowed", (1, 7)),
    Refusal("comment only", "-- views > 1", "comments are not allowed", (1, 1)),
    # casts and functions
    Refusal("::cast", "views::int = 1", "'::' casts are not allowed", (1, 6)),
    Refusal("CAST()", "CAST(views AS int) = 1", "casts are not allowed", (1, 6)),
    Refusal("pg_sleep", "pg_sleep(1) IS NULL", "pg_sleep() is not allowed", (1, 1)),
    Refusal("pg_sleep in arithmetic", "now() - pg_sleep(1) > now()", "pg_sleep()", (1, 9)),
    Refusal(
        "qualified pg_sleep",
        "views = 1 AND pg_catalog.pg_sleep(1) IS NULL",
        "the function pg_catalog.pg_sleep() is not allowed",
        (1, 15),
    ),
    Refusal("current_user", "current_user = 'x'", "current_user is not allowed", (1, 1)),
    Refusal("session_user", "title = session_user", "session_user is not allowed", (1, 9)),
    Refusal("version()", "version() = 'x'", "the function version() is not allowed", (1, 1)),
    Refusal(
        "set_config", "set_config('a', 'b', false) = 'b'", "set_config() is not allowed", (1, 1)
    ),
    Refusal("current_setting", "current_setting('a') = 'x'", "current_setting()", (1, 1)),
    Refusal("pg_read_file", "pg_read_file('/etc/passwd') = 'x'", "pg_read_file()", (1, 1)),
    Refusal("nextval", "nextval('s') > 0", "nextval() is not allowed", (1, 1)),
    Refusal("coalesce", "coalesce(title, 'x') = 'x'", "coalesce() is not allowed", (1, 1)),
    Refusal("regex", "title ~ 'a'", "the ~ operator (regular expression)", (1, 7)),
    Refusal("concatenation", "title = 'a' || 'b'", "'||' (concatenation)", (1, 13)),
    Refusal("json operator", "meta ->> 'x' = 'a'", "the json operator '->>'", (1, 6)),
    Refusal("CASE", "CASE WHEN views > 1 THEN true END", "CASE is not supported", (1, 1)),
    Refusal("ARRAY comparison", "ARRAY[1] = ARRAY[1]", "ARRAY[...] is allowed only", (1, 7)),
    Refusal("E'' string", "title = E'\\x41'", "E'...' escape strings are not", (1, 9)),
    Refusal("dollar quoting", "title = $$x$$", "dollar-quoted strings ($$...$$)", (1, 9)),
    Refusal('U&"name"', "U&\"title\" = 'x'", 'U&"..." unicode identifiers', (1, 1)),
    Refusal("stray %", "title LIKE 'a' %", "unexpected '%'", (1, 16)),
    Refusal("tagged dollar quoting", "title = $t$x$t$", "dollar-quoted strings", (1, 9)),
    Refusal("lower-case e''", "title = e'x'", "E'...' escape strings are not", (1, 9)),
    Refusal("U&'' string", "title = U&'x'", "U&'...' unicode escape strings", (1, 9)),
    Refusal("case-blind regex", "title ~* 'a'", "the ~* operator (regular expression)", (1, 7)),
    Refusal("negated regex", "title !~ 'a'", "the !~ operator (regular expression)", (1, 7)),
    Refusal("remainder", "views % 2 = 1", "there is no remainder operator", (1, 7)),
    Refusal("statement", "DROP posts", "'DROP' starts a statement", (1, 1)),
    Refusal("word after the condition", "views = 1 x", "unexpected 'x'", (1, 11)),
    Refusal("LIKE ESCAPE", "title LIKE 'a' ESCAPE '!'", "ESCAPE is not supported", (1, 23)),
    Refusal("too many arguments", "lower(title, 'x') = 'a'", "lower() takes at most 1", (1, 17)),
    Refusal("now(1)", "now(1) > created", "now() takes no arguments", (1, 1)),
    # names: system columns, hidden and unknown fields, other scopes
    Refusal("xmin", "xmin = 1", "posts has no field 'xmin'", (1, 1)),
    Refusal("ctid", "ctid = '(0,1)'", "posts has no field 'ctid'", (1, 1)),
    Refusal("oid", "oid > 0", "posts has no field 'oid'", (1, 1)),
    Refusal("tableoid", "tableoid > 0", "posts has no field 'tableoid'", (1, 1)),
    Refusal("table-qualified", "posts.title = 'x'", "posts has no field 'posts'", (1, 7)),
    Refusal("hidden field", "token = 't1'", "posts has no field 'token'", (1, 1)),
    Refusal(
        "hidden via relation", "author.password_hash = 'x'", "no field 'password_hash'", (1, 8)
    ),
    Refusal("hidden two hops away", "author.team.secret IS NULL", "no field 'secret'", (1, 13)),
    Refusal("hidden via auth", "auth.password_hash = 'x'", "no field 'password_hash'", (1, 6)),
    Refusal("hidden via auth, LIKE", "auth.password_hash LIKE 'h-%'", "password_hash", (1, 6)),
    Refusal("unknown field", "nope = 1", "posts has no field 'nope'", (1, 1)),
    Refusal("unknown related field", "author.nope = 1", "users has no field 'nope'", (1, 8)),
    Refusal("quoted name", "\"Title\" = 'x'", "no field 'Title'", (1, 1)),
    Refusal("path into text", "title.x = 1", "it has no 'x'", (1, 7)),
    Refusal("body in a filter", "body.title = 'x'", "body.* is only for create and update", (1, 6)),
    Refusal("auth path too long", "auth.team.name = 'x'", "use auth.id or auth.<field>", (1, 11)),
    Refusal(
        "relations too deep", "author.team.lead.team.name = 'x'", "at most 3 relations", (1, 23)
    ),
    Refusal("name too long", "a.b.c.d.e.f.g.h.i.j.k.l.m = 1", "too long", (1, 25)),
    Refusal("json path too long", "meta.a.b.c.d.e.f.g.h.i = 1", "at most 8 keys", (1, 22)),
    # parameters, placeholders, star
    Refusal("$1", "$1 = 1", "parameters such as '$1' are not supported", (1, 1)),
    Refusal("? placeholder", "views = ?", "'?' placeholders are not supported", (1, 9)),
    Refusal("star", "* = 1", "'*' is not allowed", (1, 1)),
    Refusal("star value", "title = *", "'*' is not allowed", (1, 9)),
    # NULL and types
    Refusal("= NULL", "title = NULL", "use IS NULL", (1, 1)),
    Refusal("!= NULL", "views != NULL", "use IS NULL", (1, 1)),
    Refusal("text in a number", "views = 'abc'", "expects a number", (1, 9)),
    Refusal("not a date-time", "created > 'yesterday'", "'yesterday' is not a date-time", (1, 11)),
    Refusal("not a date", "day = '2026-02-30'", "is not a date", (1, 7)),
    Refusal("not a uuid", "author = 'not-a-uuid'", "'not-a-uuid' is not an id", (1, 10)),
    Refusal("number in text", "title = 1", "expects a text value", (1, 9)),
    Refusal("number in bool", "published = 1", "expects true or false", (1, 13)),
    Refusal("two fields", "title = views", "cannot compare text with integer", (1, 9)),
    Refusal("LIKE a number", "views LIKE '1%'", "LIKE compares text", (1, 1)),
    Refusal("not a condition", "title", "not a condition", (1, 1)),
    Refusal("a number is not a condition", "1", "not a condition", (1, 1)),
    Refusal("NULL is not a condition", "NULL", "not a condition", (1, 1)),
    Refusal("interval", "created > now() - interval 'a while'", "is not an interval", (1, 28)),
    Refusal("date arithmetic", "day + 1 > current_date", "cannot combine date and integer", (1, 7)),
    # numbers out of range
    Refusal("bigint + 1", "views = 9223372036854775808", "out of range", (1, 9)),
    Refusal("-bigint - 1", "views > -9223372036854775809", "out of range", (1, 10)),
    Refusal("float overflow", "score = 1e400", "out of range", (1, 9)),
    Refusal("json bigint", "meta.x = 99999999999999999999999", "out of range", (1, 10)),
    # characters
    Refusal("NUL", "title = 'a\x00'", "U+0000 is not allowed", (1, 11)),
    Refusal("escape char", "title = 'a'\x1b", "U+001B is not allowed", (1, 12)),
    Refusal("DEL", "title = '\x7f'", "U+007F is not allowed", (1, 10)),
    Refusal("control char, line 2", "views = 1\nAND title = '\x01'", "U+0001", (2, 14)),
    Refusal("lone surrogate", "title = '\ud800'", "U+D800 is not allowed", (1, 10), http=False),
    Refusal("low surrogate", "title = 'a\udfff'", "U+DFFF is not allowed", (1, 11), http=False),
    # limits
    Refusal("depth 17", nested(17), "nest deeper than 16 levels", (1, 17)),
    Refusal("ARRAY depth", "ARRAY[" * 17 + "1" + "]" * 17 + " IS NULL", "deeper than 16", (1, 102)),
    Refusal("too many parts", " OR ".join(["views = 1"] * 41), "more than 200 parts", WHOLE),
    Refusal("too many NOTs", "NOT " * 120 + "published", "nested too deeply", WHOLE),
    Refusal("too long", "views = 1 OR " * 315 + "views = 1", "longer than 4096", WHOLE),
    Refusal("empty", " \n ", "empty", WHOLE),
    Refusal("IN list of 101", "views IN (" + ", ".join(["1"] * 101) + ")", "at most 100", (1, 11)),
    Refusal(
        "ARRAY of 101", "tags @> ARRAY[" + ", ".join(["'a'"] * 101) + "]", "at most 100", (1, 15)
    ),
    Refusal(
        "contains_any of 101",
        "contains_any(tags, " + ", ".join(["'a'"] * 101) + ")",
        "at most 100",
        (1, 1),
    ),
    Refusal("empty IN", "views IN ()", "at least one value", (1, 1)),
    # lists
    Refusal("ordering lists", "tags < tags", "lists cannot be ordered", (1, 1)),
    Refusal("ordering relations", "readers >= readers", "lists cannot be ordered", (1, 1)),
    Refusal("IN on a list", "tags IN ('a')", "IN compares a single value", (1, 10)),
    Refusal("contains on text", "contains(title, 'a')", "takes a list field first", (1, 1)),
    Refusal("ANY of text", "'x' = ANY(title)", "takes a list field", (1, 11)),
    Refusal("wrong element", "tags @> ARRAY[1]", "expects a text value", (1, 15)),
    # operands of different kinds, wherever they meet (ANY, BETWEEN, json with a field)
    Refusal("number = ANY(tags)", "1 = ANY(tags)", "", (1, 1)),
    Refusal("bool = ANY(readers)", "true = ANY(readers)", "", (1, 1)),
    Refusal("date = ANY(tags)", "DATE '2026-01-01' = ANY(tags)", "", (1, 6)),
    Refusal("now() = ANY(readers)", "now() = ANY(readers)", "", (1, 1)),
    Refusal("field = ANY(other list)", "title = ANY(readers)", "", (1, 1)),
    Refusal("text = ANY(readers)", "'bob' = ANY(readers)", "not an id", (1, 1)),
    Refusal("BETWEEN date AND text", "day BETWEEN '2026-01-01' AND title", "", (1, 30)),
    Refusal("BETWEEN uuid AND now()", "id BETWEEN '2026-01-01' AND now()", "", (1, 29)),
    Refusal("BETWEEN text AND a uuid", "title BETWEEN 'a' AND author", "cannot compare", (1, 23)),
    # syntax
    Refusal("a call sqlglot cannot build", "VAR_MAP(title) = 'x'", "not a valid expression", WHOLE),
    Refusal("dangling AND", "views = 1 AND", "incomplete at 'AND'", (1, 11)),
    Refusal("unterminated string", "title = 'abc", "cannot be read", (1, 9)),
]


def compile_posts_filter(text: str) -> Any:
    return g.compile_case({"filter": text})


@pytest.mark.parametrize("row", REFUSALS, ids=[r.name for r in REFUSALS])
def test_refused_with_reason_and_position(row: Refusal) -> None:
    result = compile_posts_filter(row.filter)
    assert isinstance(result, FilterError), f"{row.filter!r} compiled: {result}"
    assert row.says in result.reason, result.reason
    assert result.position == row.position, str(result)
    where = "" if row.position is None else f" (line {row.position[0]}, column {row.position[1]})"
    assert str(result) == result.reason + where


@pytest.fixture(scope="module")
async def posts_api(module_app, module_admin) -> httpx.AsyncClient:
    """The golden schema, and a client acting as bob (a signed-in user)."""
    await apply_schema(module_admin, g.document())
    transport = httpx.ASGITransport(app=module_app.asgi)
    headers = {"Authorization": f"Bearer test-user:{g.PEOPLE['bob']}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as client:
        yield client


HTTP_ROWS = [r for r in REFUSALS if r.http]


@pytest.mark.parametrize("row", HTTP_ROWS, ids=[r.name for r in HTTP_ROWS])
async def test_refused_over_http(posts_api, row: Refusal) -> None:
    response = await posts_api.get(URL, params={"filter": row.filter})
    assert response.status_code == 400, response.text
    assert_error_shape(response)
    error = response.json()["error"]
    if len(row.filter) > QueryLimits().max_length:  # stopped with the other query parameters
        assert (error["code"], error["parameter"]) == ("invalid_parameter", "filter")
        return
    expected = compile_posts_filter(row.filter)
    assert error["code"] == "invalid_filter", error
    assert error["parameter"] == "filter"
    assert error["message"] == f"filter: {expected}"
    assert error["position"] == (list(row.position) if row.position else None)


async def test_sorting_by_a_list_is_refused(posts_api) -> None:
    for sort in ("tags", "-readers", "meta", "readers.name"):
        response = await posts_api.get(URL, params={"sort": sort})
        assert response.status_code == 400, (sort, response.text)
        assert response.json()["error"]["parameter"] == "sort", sort


def test_limits_are_the_named_ones() -> None:
    """The table above follows QueryLimits' defaults; another limit moves its boundary."""
    with pytest.raises(FilterError, match="longer than 20"):
        parse_filter("title = '" + "x" * 20 + "'", QueryLimits(max_length=20))
    with pytest.raises(FilterError, match="deeper than 2"):
        parse_filter(nested(3), QueryLimits(max_depth=2))
    assert parse_filter(nested(2), QueryLimits(max_depth=2)) is not None
    with pytest.raises(FilterError, match="more than 10 parts"):
        parse_filter("views = 1 AND views = 2 AND views = 3", QueryLimits(max_nodes=10))


# -- what a refusal may say -------------------------------------------------------------------

SQLGLOT_CLASSES = {
    name
    for name, value in vars(exp).items()
    if isinstance(value, type) and issubclass(value, exp.Expression) and not name.isupper()
}


def _sweep() -> list[str]:
    """Every function sqlglot knows, every keyword and every operator it reads, in the places a
    client could put them: whatever the filter language refuses is among these."""
    parser, tokenizer = Postgres.Parser, Postgres.Tokenizer
    names = {*parser.FUNCTIONS, *parser.FUNCTION_PARSERS, *parser.NO_PAREN_FUNCTION_PARSERS}
    texts = []
    for name in sorted(names):
        texts += [f"{name}(title) = 'x'", f"{name}() = 'x'", f"{name} = 'x'"]
        texts += [f"{name}(title, 'a', 1) = 'x'", f"lower({name}(views)) = 'x'"]
    words = {k for k in tokenizer.KEYWORDS if re.fullmatch(r"[A-Za-z_ ]+", k)}
    symbols = {
        k for k in [*tokenizer.KEYWORDS, *tokenizer.SINGLE_TOKENS] if not re.search(r"\w", k)
    }
    for word in sorted(words | symbols):
        texts += [f"views {word} 1", f"{word} views", f"views = 1 {word}", f"views = {word}"]
        texts += [f"title {word} 'a' = 'b'"]
    return texts


def _leak(text: str, reason: str) -> str | None:
    """What in `reason` the client did not write: a sqlglot class, or a quoted name or a call
    that is not in `text` (the part after the first ': ' says what to do, in our words)."""
    classes = set(re.findall(r"[A-Za-z_]+", reason)) & SQLGLOT_CLASSES
    if classes:
        return f"sqlglot classes {sorted(classes)}"
    problem = reason.split(": ")[0]
    quoted = [q for q in re.findall(r"'([^']*)'", problem) if re.search(r"[A-Za-z]", q)]
    for name in quoted + re.findall(r"([\w.]+)\(\)", problem):
        if name.lower() not in text.lower():
            return f"{name!r} is not in the filter"
    return None


def test_no_refusal_names_what_the_client_did_not_write() -> None:
    """sqlglot's names for what it parsed ('RawString', 'BitwiseAnd', regexp_like(), 'Alias')
    never reach a message; a refused function is named as it was called."""
    leaks = []
    for text in _sweep():
        result = compile_posts_filter(text)
        if isinstance(result, FilterError) and (leak := _leak(text, result.reason)):
            leaks.append(f"{text!r}: {leak}: {result.reason}")
    assert not leaks, "\n".join(leaks[:20])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("version() = 'x'", "the function version() is not"),  # sqlglot: current_version
        ("date_trunc('day', created) = now()", "the function date_trunc() is not"),
        ("position('a' in title) = 1", "the function position() is not"),  # str_position
        ("mod(views, 2) = 0", "the function mod() is not"),  # sqlglot: the % operator
        ("uuid(title) = 'x'", "the function uuid() is not"),  # sqlglot: a cast
        ("EXTRACT(year FROM created) = 2026", "the function EXTRACT() is not"),
        ("char_length(views) = 1", "char_length() takes text"),  # sqlglot: length
        ("CURRENT_TIMESTAMP(1) > created", "CURRENT_TIMESTAMP() takes no arguments"),
    ],
)
def test_a_function_is_named_as_called(text: str, says: str) -> None:
    result = compile_posts_filter(text)
    assert isinstance(result, FilterError)
    assert says in result.reason, result.reason
    assert result.position == (1, 1)


def test_statements_and_unknown_syntax_are_refused_without_a_warning(caplog) -> None:  # type: ignore[no-untyped-def]
    """sqlglot reads unknown syntax as an opaque command and logs a warning each time: a client
    could fill the log. These are refusals like any other, and nothing is logged."""
    for text in ("ALTER posts", "SET views = 1", "SHOW views", "if = 'x'", "comment = 'x'"):
        result = compile_posts_filter(text)
        assert isinstance(result, FilterError), text
        assert result.position == (1, 1), (text, result)
    assert [r for r in caplog.records if r.name.startswith("sqlglot")] == []
