"""Golden cases of the filter language: load them, compile them, run them, write them back.

A golden file is a YAML list of cases. Each case names what to compile:

    filter: views > 1            # a client filter (filter_condition), or
    rule: create                 # ... the same text compiled as this rule (rule_condition), or
    sort: author.name            # a sort key (sort_value) instead of `filter`
    collection: posts            # the collection (default posts)
    admin: true                  # compiled for a service key (no related list rules)
    auth: ann | bob | cat | anon # whose auth.id the statement runs with (default bob)
    body: {author: '@ann'}       # body.* arguments for create/update rules ('@x' = x's id)

and holds what it compiles to (`sql`, `params`) or the `error`, plus `matches`: the records of the
seeded database (by label) it selects, in order. Expectations are rewritten with
BAAS_UPDATE_GOLDEN=1; read the diff before committing it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlglot import exp

from baas.db.errors import UnexpectedDatabaseError
from baas.db.sqltree import Compiled, Params
from baas.errors import ApiError
from baas.query import FilterError, QueryLimits
from baas.rules import engine
from baas.rules.resolver import aliased, column, pg_type
from baas.schema.diff import plan
from baas.schema.document import parse_document
from baas.schema.models import Collection, Schema
from tests.conftest import apply_schema

GOLDEN = Path(__file__).parent / "golden"
SCHEMA_FILE = GOLDEN / "schema.yaml"
LIMITS = QueryLimits()
ALIAS = "rec"
LABELS = {"posts": "title", "users": "name", "teams": "name", "comments": "text"}
EXPECTED_KEYS = ("sql", "params", "error", "matches")

PEOPLE = {
    "ann": "aaaaaaaa-0000-4000-8000-000000000001",
    "bob": "bbbbbbbb-0000-4000-8000-000000000002",
    "cat": "cccccccc-0000-4000-8000-000000000003",
}
TEAMS = {
    "red": "00000000-0000-4000-8000-0000000000e1",
    "hidden": "00000000-0000-4000-8000-0000000000e2",
    "blue": "00000000-0000-4000-8000-0000000000e3",
}
POSTS = {f"p{i}": f"00000000-0000-4000-8000-00000000000{i}" for i in range(1, 7)}
COMMENT = "00000000-0000-4000-8000-0000000000c1"


def document() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_FILE.read_text())  # type: ignore[no-any-return]


@functools.cache
def schema() -> Schema:
    return plan(Schema(), parse_document(document())).schema


# -- the seeded database ---------------------------------------------------------------------------


def seed() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, body) requests that fill the database every `matches` is computed on."""
    teams = [
        ("red", {"lead": PEOPLE["ann"], "secret": "s-red"}),
        ("hidden", {"lead": PEOPLE["bob"]}),  # its own list rule hides it from clients
        ("blue", {}),
    ]
    users = [
        ("ann", {"role": "admin", "address": "ann@example.com"}),
        ("bob", {"role": "member", "site": "https://bob.example"}),
        ("cat", {"role": "member"}),
    ]
    memberships = {"ann": TEAMS["red"], "bob": TEAMS["hidden"]}
    posts: list[tuple[str, dict[str, Any]]] = [
        (
            "p1",
            {
                "title": "Hello",
                "views": 10,
                "score": 1.5,
                "published": True,
                "published_at": "2000-01-10T12:00:00Z",
                "day": "2026-01-10",
                "meta": {"a": {"b": 1}, "x": "hi", "n": 5},
                "site": "https://example.com/a",
                "contact": "ann@example.com",
                "kind": "news",
                "tags": ["a", "b"],
                "author": PEOPLE["ann"],
                "readers": [PEOPLE["bob"], PEOPLE["cat"]],
                "token": "t1",
            },
        ),
        (
            "p2",
            {
                "title": "hello world",
                "views": 0,
                "score": -2.5,
                "published": False,
                "published_at": "2100-01-01T00:00:00Z",
                "day": "2026-02-01",
                "meta": {"a": {"b": None}, "x": None},
                "kind": "blog",
                "tags": ["c"],
                "author": PEOPLE["bob"],
                "token": "t2",
            },
        ),
        ("p3", {"title": "Zed", "readers": [PEOPLE["ann"]]}),
        (
            "p4",
            {
                "title": "It's 100%",
                "views": 5,
                "score": 0,
                "published": False,
                "published_at": "2000-06-01T00:00:00Z",
                "day": "2025-12-31",
                "meta": {"a": {"b": "x"}, "x": "HI"},
                "kind": "news",
                "tags": ["a"],
                "author": PEOPLE["cat"],
                "readers": [PEOPLE["ann"], PEOPLE["bob"]],
            },
        ),
        (
            "p5",
            {
                "title": "  spaced  ",
                "views": 3,
                "score": 100.25,
                "published": True,
                "meta": {"x": 2, "n": 10},
                "kind": "blog",
                "tags": ["b", "c"],
                "author": PEOPLE["bob"],
                "readers": [PEOPLE["cat"]],
            },
        ),
        (
            "p6",
            {
                "title": "under_score",
                "views": -7,
                "score": 2.0,
                "meta": [1, 2],
                "tags": ["a", "b", "c"],
                "author": PEOPLE["ann"],
            },
        ),
    ]
    url = "/api/collections/{}/records"
    requests: list[tuple[str, str, dict[str, Any]]] = []
    for name, body in users:  # teams point at users and users at teams: link them afterwards
        requests.append(("POST", url.format("users"), {"id": PEOPLE[name], "name": name, **body}))
    for name, body in teams:
        requests.append(("POST", url.format("teams"), {"id": TEAMS[name], "name": name, **body}))
    for name, team in memberships.items():
        requests.append(("PATCH", f"{url.format('users')}/{PEOPLE[name]}", {"team": team}))
    for name, body in posts:
        requests.append(("POST", url.format("posts"), {"id": POSTS[name], **body}))
    comment = {"id": COMMENT, "text": "first", "post": POSTS["p1"]}
    requests.append(("POST", url.format("comments"), comment))
    requests.append(("PATCH", f"{url.format('posts')}/{POSTS['p1']}", {"best": COMMENT}))
    return requests


@pytest.fixture(scope="module")
async def seeded(module_app: Any, module_admin: Any) -> Any:
    """The module's database with the golden schema and records; its AppContext."""
    await apply_schema(module_admin, document())
    for method, url, body in seed():
        response = await module_admin.request(method, url, json=body)
        assert response.status_code in (200, 201), response.text
    await module_app.ctx.db.execute(  # credentials only the auth API writes
        "UPDATE users SET password_hash = 'h-' || name WHERE name IN ('ann', 'bob')"
    )
    return module_app.ctx


# -- compiling -------------------------------------------------------------------------------------


def _collection(case: dict[str, Any]) -> Collection:
    c = schema().collection(case.get("collection", "posts"))
    assert c is not None, case
    return c


def _as_rule(c: Collection, operation: str, text: str) -> Collection:
    return dataclasses.replace(c, rules=dataclasses.replace(c.rules, **{operation: text}))


def condition(case: dict[str, Any], p: Params) -> exp.Expression:
    """The compiled node for `case` (a condition, or a sort value); FilterError if refused."""
    c = _collection(case)
    admin = bool(case.get("admin"))
    auth_id = exp.Cast(this=p.arg("auth.id"), to=pg_type("uuid"))
    if "sort" in case:
        path = tuple(case["sort"].split("."))
        return engine.sort_value(
            schema(), c, path, ALIAS, p, LIMITS, auth_id=auth_id, admin=admin
        ).node
    if "rule" in case:
        operation = case["rule"]
        c = _as_rule(c, operation, case["filter"])
        try:
            node = engine.rule_condition(
                schema(), c, operation, ALIAS, p, LIMITS, auth_id=auth_id, admin=admin
            )
        except engine.RuleError as exc:
            raise FilterError(str(exc)) from None
        return node if node is not None else exp.true()
    return engine.filter_condition(
        schema(), c, case["filter"], ALIAS, p, LIMITS, auth_id=auth_id, admin=admin
    )


def compile_case(case: dict[str, Any]) -> Compiled | FilterError:
    p = Params()
    try:
        node = condition(case, p)
    except FilterError as exc:
        return exc
    return p.compile(node)


def expected_of(compiled: Compiled | FilterError) -> dict[str, Any]:
    """What a golden file records about a compile: the SQL and parameters, or the error."""
    if isinstance(compiled, FilterError):
        return {"error": str(compiled)}
    return {"sql": compiled.sql, "params": [_param(c, v) for c, v in compiled.sources]}


def _param(constant: bool, value: Any) -> Any:
    """A parameter as YAML shows it: JSON-like values as they are, anything else tagged."""
    if not constant:
        return {"arg": value}
    if isinstance(value, datetime):
        return {"timestamptz": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, list):
        return [_param(True, v) for v in value]
    return value


# -- running ---------------------------------------------------------------------------------------


def statement(case: dict[str, Any]) -> tuple[Compiled, dict[str, Any]]:
    """SELECT the labels of the records the case selects (or all, in the sort's order).
    Labels of a filter's matches are sorted by the caller, in Python: the database's collation
    must not decide what a golden file says."""
    c = _collection(case)
    p = Params()
    node = condition(case, p)
    q = exp.select(column(LABELS[c.name], ALIAS)).from_(aliased(c, ALIAS))
    if "sort" in case:  # ties (and nulls, last) in the order of the fixed ids
        q = q.order_by(exp.Ordered(this=node, nulls_first=False), column("id", ALIAS))
    else:
        q = q.where(node)
    who = case.get("auth", "bob")
    args: dict[str, Any] = {"auth.id": None if who == "anon" else PEOPLE[who]}
    for name in (*c.field_names, "id"):  # body.* is null unless the case sends it
        args[f"body.{name}"] = None
    for name, value in (case.get("body") or {}).items():
        args[f"body.{name}"] = _reference(value)
    return p.compile(q), args


def _reference(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        return {**PEOPLE, **TEAMS, **POSTS}[value[1:]]
    if isinstance(value, list):
        return [_reference(v) for v in value]
    return value


# -- checking -------------------------------------------------------------------------------------

UPDATE = bool(os.environ.get("BAAS_UPDATE_GOLDEN"))
COMPILED = ("sql", "params", "error")
MATCHES = ("matches",)


def golden(directory: Path = GOLDEN) -> Any:
    """Parametrize a test over every case of every golden file in `directory`."""
    params = [
        pytest.param(path, index, id=f"{path.stem}-{index:02d}")
        for path in case_files(directory)
        for index in range(len(load(path)))
    ]
    return pytest.mark.parametrize(("path", "index"), params)


def compiled(case: dict[str, Any]) -> dict[str, Any]:
    return expected_of(compile_case(inputs(case)))


async def selected(ctx: Any, case: dict[str, Any]) -> dict[str, Any]:
    """The labels of the records the case selects from the seeded database ({} if refused)."""
    try:
        q, args = statement(inputs(case))
    except FilterError:
        return {}
    try:
        rows = await ctx.db.fetch(q.sql, *q.bind(args))
    except (ApiError, UnexpectedDatabaseError) as exc:  # PostgreSQL refused the statement
        code = exc.code if isinstance(exc, ApiError) else "internal_error"
        return {"matches": f"refused by PostgreSQL ({code}): {str(exc)[:100]}"}
    labels = [row[0] for row in rows]
    return {"matches": labels if "sort" in case else sorted(labels)}


def check_compiles(path: Path, index: int) -> None:
    """Case `index` of `path` compiles to its recorded SQL and parameters (or error)."""
    cases = load(path)
    if UPDATE:
        if index == 0:  # the first case's test rewrites the whole file
            rewrite(path, [compiled(case) for case in cases], COMPILED)
        return
    case = cases[index]
    got = compiled(case)
    assert got == expected(case, COMPILED), _report(case, got, COMPILED)


async def check_matches(ctx: Any, path: Path, index: int) -> None:
    """Case `index` of `path` selects its recorded records from the seeded database."""
    cases = load(path)
    if UPDATE:
        if index == 0:
            rewrite(path, [await selected(ctx, case) for case in cases], MATCHES)
        return
    case = cases[index]
    got = await selected(ctx, case)
    assert got == expected(case, MATCHES), _report(case, got, MATCHES)


def _report(case: dict[str, Any], got: dict[str, Any], keys: tuple[str, ...]) -> str:
    lines = [f"input: {inputs(case)}"]
    for key in keys:
        if case.get(key) != got.get(key):
            lines.append(f"  expected {key}: {case.get(key)!r}")
            lines.append(f"  actual   {key}: {got.get(key)!r}")
    return "\n".join(lines)


# -- files -----------------------------------------------------------------------------------------


def case_files(directory: Path = GOLDEN) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p != SCHEMA_FILE)


def load(path: Path) -> list[dict[str, Any]]:
    """The cases of a golden file (parsed once per version of the file)."""
    return _load(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _load(path: Path, _version: int) -> list[dict[str, Any]]:
    cases = yaml.load(path.read_text(), Loader=_LOADER)  # a safe loader (C if available)
    assert isinstance(cases, list), path
    return cases


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def inputs(case: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in case.items() if k not in EXPECTED_KEYS}


def expected(case: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: case[k] for k in keys if k in case}


def rewrite(path: Path, updates: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    """Replace the `keys` of every case of `path` with `updates` (one dict per case)."""
    cases = load(path)
    out = [
        {**{k: v for k, v in case.items() if k not in keys}, **update}
        for case, update in zip(cases, updates, strict=True)
    ]
    path.write_text(_dump(out, path))


class _FlowList(list):  # type: ignore[type-arg]
    pass


class _FlowDict(dict):  # type: ignore[type-arg]
    pass


class _Dumper(yaml.SafeDumper):
    """Cases in block style; each case's values (lists, parameters) in flow style, one line."""


_Dumper.add_representer(
    _FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)
_Dumper.add_representer(
    _FlowDict, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True)
)


def _flow(value: Any) -> Any:
    if isinstance(value, list):
        return _FlowList(_flow(v) for v in value)
    if isinstance(value, dict):
        return _FlowDict((k, _flow(v)) for k, v in value.items())
    return value


def _dump(cases: list[dict[str, Any]], path: Path) -> str:
    """The cases as YAML, each after the comment lines that came before it in `path`."""
    comments = _comments(path.read_text())
    blocks = []
    for index, case in enumerate(cases):
        ordered = {k: _flow(case[k]) for k in (*inputs(case), *EXPECTED_KEYS) if k in case}
        text = yaml.dump(
            [ordered], Dumper=_Dumper, sort_keys=False, width=100_000, allow_unicode=True
        )
        blocks.append("".join(line + "\n" for line in comments.get(index, [])) + text)
    return "\n".join(blocks)


def _comments(text: str) -> dict[int, list[str]]:
    """Comment lines by the index of the case they precede."""
    found: dict[int, list[str]] = {}
    pending: list[str] = []
    index = 0
    for line in text.splitlines():
        if line.startswith("#"):
            pending.append(line)
        elif line.startswith("- "):
            if pending:
                found[index] = pending
            pending = []
            index += 1
    return found
