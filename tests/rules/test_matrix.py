"""The authorization matrix for reads: who lists, views, filters, sorts, searches and expands what
in the seeded blog (tests/rules/blog.py), and `visible_to` agreeing with it. Nothing here writes,
so every test shares one seeded database."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import orjson
import pytest

from baas.records.visibility import visible_to
from tests.records.scenarios import assert_error_shape
from tests.rules.blog import (
    EMAILS,
    EVERYONE,
    IDS,
    LISTED_COMMENTS,
    LISTED_USERS,
    MISSING,
    VIEWABLE_COMMENTS,
    VIEWABLE_USERS,
    VISIBLE_POSTS,
    call,
    names,
    url,
)

ALICE, BOB = EMAILS["A"], EMAILS["B"]
SEEDED = {
    "posts": ("a_pub", "a_pub2", "a_draft", "b_pub", "b_draft"),
    "comments": ("c_pub", "c_self", "c_bdraft", "c_orphan"),
    "users": ("A", "B", "M"),
}
LISTED = {"posts": VISIBLE_POSTS, "comments": LISTED_COMMENTS, "users": LISTED_USERS}
VIEWABLE = {"posts": VISIBLE_POSTS, "comments": VIEWABLE_COMMENTS, "users": VIEWABLE_USERS}
HIDDEN_KEYS = {"note", "secret", "flagged_by"}


async def page(
    client: httpx.AsyncClient, who: str, collection: str, **params: Any
) -> dict[str, Any]:
    response = await call(client, who, "GET", url(collection), params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def refused(
    client: httpx.AsyncClient, who: str, collection: str, status: int, code: str, **params: Any
) -> dict[str, Any]:
    response = await call(client, who, "GET", url(collection), params=params)
    assert response.status_code == status, response.text
    assert_error_shape(response)
    error = response.json()["error"]
    assert error["code"] == code, error
    return error  # type: ignore[no-any-return]


def decode_cursor(cursor: str) -> list[Any]:
    return orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))  # type: ignore[no-any-return]


def hidden_keys(value: Any) -> set[str]:
    """Hidden field names anywhere in a record, its expanded records included."""
    if isinstance(value, list):
        return set().union(*(hidden_keys(v) for v in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = HIDDEN_KEYS & set(value)
    return found.union(*(hidden_keys(v) for v in value.values()))


# -- list and view: each identity x each collection / record ---------------------------------------


@pytest.mark.parametrize("who", EVERYONE)
@pytest.mark.parametrize("collection", ["posts", "comments", "users"])
async def test_list_holds_exactly_what_the_list_rule_allows(blog, collection, who):
    body = await page(blog, who, collection)
    assert set(names(body["items"])) == LISTED[collection][who]
    assert body["total"] == len(LISTED[collection][who])
    assert not any(hidden_keys(item) for item in body["items"])


@pytest.mark.parametrize("who", EVERYONE)
@pytest.mark.parametrize(
    ("collection", "record"), [(c, r) for c, records in SEEDED.items() for r in records]
)
async def test_view_answers_404_unless_the_view_rule_allows(blog, collection, record, who):
    response = await call(blog, who, "GET", url(collection, record))
    if record in VIEWABLE[collection][who]:
        assert response.status_code == 200, response.text
        assert response.json()["id"] == IDS[record]
        assert not hidden_keys(response.json())
    else:
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "record_not_found"


@pytest.mark.parametrize("who", ["anon", "A", "B", "M"])
@pytest.mark.parametrize("path", [url("categories"), url("categories", "news")])
async def test_locked_reads_are_forbidden_to_all_but_service_keys(blog, who, path):
    response = await call(blog, who, "GET", path)
    assert response.status_code == 403, response.text
    assert_error_shape(response)
    assert response.json()["error"]["code"] == "forbidden"
    assert (await call(blog, "admin", "GET", path)).status_code == 200


# -- filters never widen the rule ---------------------------------------------------------------

WIDENING = [
    ("B", "published = false OR true", VISIBLE_POSTS["B"]),
    ("B", "true", VISIBLE_POSTS["B"]),
    ("B", "published = false", {"b_draft"}),
    ("B", f"id = '{IDS['a_draft']}'", set()),
    ("B", f"id IN ('{IDS['a_draft']}', '{IDS['a_pub']}')", {"a_pub"}),
    ("B", f"author = '{IDS['A']}'", {"a_pub", "a_pub2"}),
    ("B", "title = 'alpha draft' OR title = 'alpha public'", {"a_pub"}),
    ("B", "NOT (published = true OR author = auth.id)", set()),
    ("B", "author != auth.id OR published = false", {"a_pub", "a_pub2", "b_draft"}),
    ("anon", "published = false OR author IS NOT NULL", VISIBLE_POSTS["anon"]),
    ("anon", "author = auth.id OR published = false", set()),
    ("M", "published = false OR published = true", VISIBLE_POSTS["M"]),
    ("A", "published IS FALSE", {"a_draft"}),
    ("admin", "published = false", {"a_draft", "b_draft"}),
]


@pytest.mark.parametrize(
    ("who", "text", "expected"), WIDENING, ids=[f"{w}: {t}" for w, t, _ in WIDENING]
)
async def test_a_filter_narrows_the_rule_never_widens_it(blog, who, text, expected):
    body = await page(blog, who, "posts", filter=text)
    assert set(names(body["items"])) == expected
    assert body["total"] == len(expected)


@pytest.mark.parametrize(
    "text",
    [
        "published = true) OR (true",
        "true; DELETE FROM posts",
        "published = true UNION SELECT 1",
        "EXISTS (SELECT 1 FROM posts)",
        "id IN (SELECT id FROM posts)",
    ],
)
async def test_a_filter_cannot_escape_its_expression(blog, text):
    await refused(blog, "B", "posts", 400, "invalid_filter", filter=text)
    assert (await page(blog, "admin", "posts"))["total"] == 5


# -- hidden fields: never in filters, sorts, projections or expands, and no hint they exist ---------

HIDDEN = [
    # (collection, parameter, value, hidden name in value, error code)
    ("posts", "filter", "note = 'note on a_draft'", "note", "invalid_filter"),
    ("posts", "filter", "note IS NULL", "note", "invalid_filter"),
    ("posts", "filter", "length(note) > 0", "note", "invalid_filter"),
    ("posts", "filter", "author.secret = 'secret of A'", "secret", "invalid_filter"),
    ("posts", "filter", "see_also.note LIKE 'note%'", "note", "invalid_filter"),
    ("comments", "filter", "post.note = 'x'", "note", "invalid_filter"),
    ("comments", "filter", "post.author.secret = 'x'", "secret", "invalid_filter"),
    ("comments", "filter", "flagged_by IS NULL", "flagged_by", "invalid_filter"),
    ("comments", "filter", "flagged_by.name = 'Bob'", "flagged_by", "invalid_filter"),
    ("users", "filter", "secret = 'secret of A'", "secret", "invalid_filter"),
    ("posts", "sort", "note", "note", "invalid_parameter"),
    ("posts", "sort", "-author.secret", "secret", "invalid_parameter"),
    ("comments", "sort", "post.note", "note", "invalid_parameter"),
    ("comments", "sort", "flagged_by.name", "flagged_by", "invalid_parameter"),
    ("users", "sort", "secret", "secret", "invalid_parameter"),
    ("posts", "fields", "id,note", "note", "invalid_parameter"),
    ("comments", "expand", "flagged_by", "flagged_by", "invalid_parameter"),
]


@pytest.mark.parametrize("who", ["B", "M", "admin"])
@pytest.mark.parametrize(
    ("collection", "parameter", "value", "hidden", "code"),
    HIDDEN,
    ids=[f"{c} {p}={v}" for c, p, v, _, _ in HIDDEN],
)
async def test_hidden_fields_are_unknown_names(
    blog, who, collection, parameter, value, hidden, code
):
    """Refused exactly like a field that does not exist (same status, code, message, position),
    for service keys too."""
    error = await refused(blog, who, collection, 400, code, **{parameter: value})
    stand_in = "z" * len(hidden)
    unknown = await refused(
        blog, who, collection, 400, code, **{parameter: value.replace(hidden, stand_in)}
    )
    for e in (error, unknown):
        del e["request_id"]
    assert error == {**unknown, "message": unknown["message"].replace(stand_in, hidden)}


@pytest.mark.parametrize("text", ["auth.secret = 'secret of B'", "auth.secret LIKE 'secret%'"])
async def test_auth_hidden_fields_are_unknown_in_client_filters(blog, text):
    await refused(blog, "B", "posts", 400, "invalid_filter", filter=text)


@pytest.mark.parametrize("text", ["body.title = 'x'", "body.author IS NULL"])
async def test_body_is_not_for_client_filters(blog, text):
    await refused(blog, "A", "posts", 400, "invalid_filter", filter=text)


# -- paths through relations see only what the related list rule allows -------------------------

RELATED = [
    # users list: yourself (M, with role admin: everyone), so other people's fields never match.
    ("posts", f"author.address = '{ALICE}'", {"anon": set(), "A": {"a_pub", "a_pub2", "a_draft"}, "B": set(), "M": {"a_pub", "a_pub2"}, "admin": {"a_pub", "a_pub2", "a_draft"}}),
    ("posts", f"author.address = '{BOB}'", {"anon": set(), "A": set(), "B": {"b_pub", "b_draft"}, "M": {"b_pub"}, "admin": {"b_pub", "b_draft"}}),
    ("posts", "author.name IS NOT NULL", {"anon": set(), "A": {"a_pub", "a_pub2", "a_draft"}, "B": {"b_pub", "b_draft"}, "M": VISIBLE_POSTS["M"], "admin": VISIBLE_POSTS["admin"]}),
    ("posts", f"NOT (author.address = '{ALICE}')", {"anon": VISIBLE_POSTS["anon"], "A": {"b_pub"}, "B": VISIBLE_POSTS["B"], "M": {"b_pub"}, "admin": {"b_pub", "b_draft"}}),
    ("posts", "author.name LIKE 'A%' OR author.name LIKE 'B%'", {"anon": set(), "A": {"a_pub", "a_pub2", "a_draft"}, "B": {"b_pub", "b_draft"}, "M": VISIBLE_POSTS["M"], "admin": VISIBLE_POSTS["admin"]}),
    # posts list: a multiple relation matches only through the related posts the caller may list.
    ("posts", "see_also.title = 'alpha draft'", {"anon": set(), "A": {"a_pub"}, "B": set(), "M": set(), "admin": {"a_pub"}}),
    ("posts", "see_also.title = 'alpha second'", {who: {"a_pub"} for who in EVERYONE}),
    ("posts", "see_also.published = false", {"anon": set(), "A": {"a_pub"}, "B": set(), "M": set(), "admin": {"a_pub"}}),
    # categories are locked: only service keys reach them through a path.
    ("posts", "category.name = 'news'", {**{who: set() for who in EVERYONE}, "admin": {"a_pub"}}),
    ("posts", "category.id IS NOT NULL", {**{who: set() for who in EVERYONE}, "admin": {"a_pub"}}),
    ("comments", "post.title = 'alpha public'", {who: {"c_pub"} for who in EVERYONE}),
    ("comments", "post.title = 'alpha draft'", {"anon": set(), "A": {"c_self", "c_orphan"}, "B": set(), "M": set(), "admin": {"c_self", "c_orphan"}}),
    ("comments", f"author.address = '{BOB}'", {"anon": set(), "A": set(), "B": {"c_pub", "c_bdraft"}, "M": {"c_pub"}, "admin": {"c_pub", "c_bdraft", "c_orphan"}}),
    ("comments", f"post.author.address = '{ALICE}'", {"anon": set(), "A": {"c_pub", "c_self", "c_orphan"}, "B": set(), "M": {"c_pub"}, "admin": {"c_pub", "c_self", "c_orphan"}}),
]  # fmt: skip


@pytest.mark.parametrize("who", EVERYONE)
@pytest.mark.parametrize(
    ("collection", "text", "expected"), RELATED, ids=[f"{c}: {t}" for c, t, _ in RELATED]
)
async def test_relation_paths_see_only_related_records_the_caller_may_list(
    blog, collection, text, expected, who
):
    body = await page(blog, who, collection, filter=text)
    assert set(names(body["items"])) == expected[who]
    assert body["total"] == len(expected[who])


async def walk_as(
    client: httpx.AsyncClient, who: str, collection: str, **params: Any
) -> tuple[list[dict[str, Any]], list[str], list[int]]:
    """Every item of a list as `who`, following next_cursor: (items, cursors, totals)."""
    items: list[dict[str, Any]] = []
    cursors: list[str] = []
    totals: list[int] = []
    cursor = None
    for _ in range(50):
        body = await page(
            client, who, collection, **params, **({"cursor": cursor} if cursor else {})
        )
        items += body["items"]
        totals.append(body["total"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items, cursors, totals
        assert len(body["items"]) == body["per_page"]
        cursors.append(cursor)
    raise AssertionError("the cursor never ended")


@pytest.mark.parametrize(
    ("who", "order", "values"),
    [
        ("B", ["b_pub", "b_draft", "a_pub", "a_pub2"], ["Bob", "Bob", None]),
        ("A", ["a_pub", "a_pub2", "a_draft", "b_pub"], ["Alice", "Alice", "Alice"]),
        ("anon", ["a_pub", "a_pub2", "b_pub"], [None, None]),
        ("admin", ["a_pub", "a_pub2", "a_draft", "b_pub", "b_draft"], ["Alice"] * 3 + ["Bob"]),
    ],
)
async def test_sorting_through_a_relation_sees_hidden_records_as_null(blog, who, order, values):
    """Related records the list rule hides sort as null (last), and travel in cursors as null."""
    items, cursors, _ = await walk_as(blog, who, "posts", sort="author.name", per_page=1)
    assert names(items) == order
    assert [decode_cursor(c) for c in cursors] == [
        [["author.name", "id"], [value, item["id"]]]
        for value, item in zip(values, items[:-1], strict=True)
    ]


# -- totals, pages and cursors walk only visible rows -------------------------------------------


SORTS = [
    ("posts", "-created"),
    ("posts", "title"),
    ("posts", "author.name"),
    ("comments", "-created"),
    ("comments", "text"),
    ("comments", "-post.title"),
    ("users", "name"),
    ("users", "-address"),
]


@pytest.mark.parametrize("who", EVERYONE)
@pytest.mark.parametrize(("collection", "sort"), SORTS, ids=[f"{c}?sort={s}" for c, s in SORTS])
async def test_cursor_pagination_walks_only_visible_rows(blog, collection, sort, who):
    items, _, totals = await walk_as(blog, who, collection, sort=sort, per_page=1)
    expected = LISTED[collection][who]
    assert sorted(names(items)) == sorted(expected)
    assert totals == [len(expected)] * max(len(expected), 1)


@pytest.mark.parametrize("who", EVERYONE)
async def test_offset_pages_count_only_visible_rows(blog, who):
    everything = (await page(blog, who, "posts", per_page=100))["items"]
    for number in (1, 2, 3):
        body = await page(blog, who, "posts", per_page=2, page=number)
        assert body["total"] == len(VISIBLE_POSTS[who])
        assert body["items"] == everything[2 * (number - 1) : 2 * number]


# -- expand embeds only what the related view rule allows ---------------------------------------


def expanded(record: dict[str, Any]) -> dict[str, Any]:
    """The record's `expand` as seeded names: a record -> its name (nested expands as a pair)."""

    def name(value: Any) -> Any:
        if isinstance(value, list):
            return [name(v) for v in value]
        if value is None:
            return None
        inner = value.get("expand")
        own = names([value])[0]
        return (own, {k: name(v) for k, v in inner.items()}) if inner else own

    return {k: name(v) for k, v in record.get("expand", {}).items()}


EXPANDS = [
    # (who, collection, record, expand, expected expand by name)
    ("anon", "posts", "a_pub", "author", {"author": None}),
    ("B", "posts", "a_pub", "author", {"author": "A"}),
    ("M", "posts", "b_pub", "author", {"author": "B"}),
    ("anon", "posts", "a_pub", "see_also", {"see_also": ["a_pub2"]}),
    ("B", "posts", "a_pub", "see_also", {"see_also": ["a_pub2"]}),
    ("A", "posts", "a_pub", "see_also", {"see_also": ["a_draft", "a_pub2"]}),
    ("admin", "posts", "a_pub", "see_also", {"see_also": ["a_draft", "a_pub2"]}),
    ("A", "posts", "a_pub", "category", {"category": None}),
    ("M", "posts", "a_pub", "category", {"category": None}),
    ("admin", "posts", "a_pub", "category", {"category": "news"}),
    ("B", "posts", "a_pub", "author,see_also.author", {"author": "A", "see_also": [("a_pub2", {"author": "A"})]}),
    ("anon", "posts", "a_pub", "author,see_also.author", {"author": None, "see_also": [("a_pub2", {"author": None})]}),
    ("B", "comments", "c_orphan", "post", {"post": None}),
    ("B", "comments", "c_orphan", "post.author,author", {"post": None, "author": "B"}),
    ("A", "comments", "c_orphan", "post,author", {"post": "a_draft", "author": "B"}),
    ("B", "comments", "c_pub", "post.author", {"post": ("a_pub", {"author": "A"})}),
    ("anon", "comments", "c_pub", "post.author,author", {"post": ("a_pub", {"author": None}), "author": None}),
    ("admin", "comments", "c_orphan", "post.category", {"post": ("a_draft", {"category": None})}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("who", "collection", "record", "expand", "expected"),
    EXPANDS,
    ids=[f"{w} {c}/{r}?expand={e}" for w, c, r, e, _ in EXPANDS],
)
async def test_expand_embeds_only_records_the_caller_may_view(
    blog, who, collection, record, expand, expected
):
    response = await call(blog, who, "GET", url(collection, record), params={"expand": expand})
    assert response.status_code == 200, response.text
    assert expanded(response.json()) == expected
    assert not hidden_keys(response.json())


@pytest.mark.parametrize("who", EVERYONE)
async def test_expand_in_lists_follows_each_related_view_rule(blog, who):
    body = await page(blog, who, "posts", expand="author,see_also,category")
    signed_in = who != "anon"
    for item in body["items"]:
        got = expanded(item)
        assert got["author"] == (names([{"id": item["author"]}])[0] if signed_in else None)
        assert got["see_also"] == [
            n for n in names([{"id": i} for i in item["see_also"]]) if n in VISIBLE_POSTS[who]
        ]
        assert got["category"] == ("news" if who == "admin" and item["category"] else None)
        assert not hidden_keys(item)


# -- search --------------------------------------------------------------------------------------

SEARCHES = [
    ("shared", {"anon": {"a_pub"}, "A": {"a_pub", "a_draft"}, "B": {"a_pub", "b_draft"}, "M": {"a_pub"}, "admin": {"a_pub", "a_draft", "b_draft"}}),
    ("alpha", {"anon": {"a_pub", "a_pub2"}, "A": {"a_pub", "a_pub2", "a_draft"}, "B": {"a_pub", "a_pub2"}, "M": {"a_pub", "a_pub2"}, "admin": {"a_pub", "a_pub2", "a_draft"}}),
    ("draft", {"anon": set(), "A": {"a_draft"}, "B": set(), "M": set(), "admin": {"a_draft"}}),
    ("unpublished", {"anon": set(), "A": set(), "B": {"b_draft"}, "M": set(), "admin": {"b_draft"}}),
]  # fmt: skip


@pytest.mark.parametrize("who", EVERYONE)
@pytest.mark.parametrize(("text", "expected"), SEARCHES, ids=[t for t, _ in SEARCHES])
async def test_search_finds_only_visible_records(blog, text, expected, who):
    body = await page(blog, who, "posts", search=text)
    assert set(names(body["items"])) == expected[who]
    assert body["total"] == len(expected[who])
    widened = await page(blog, who, "posts", search=text, filter="published = false OR true")
    assert widened["items"] == body["items"]


# -- errors that would reveal hidden rows --------------------------------------------------------


async def test_a_failing_filter_reveals_nothing_about_hidden_rows(blog):
    # c_self ("note to self", 12 characters) is hidden from B; B's comments have 4 characters.
    # (1.0 / ...: a fraction, so that only a zero divisor matters, not integer division.)
    body = await page(blog, "B", "comments", filter="1.0 / (length(text) - 12) != 0")
    assert set(names(body["items"])) == LISTED_COMMENTS["B"]


@pytest.mark.parametrize(
    ("who", "collection", "text", "expected"),
    [
        # "alpha draft" (11 characters) is hidden from B; B's own "bravo unpublished" has 17.
        ("B", "posts", "1.0 / (length(title) - 11) != 0", VISIBLE_POSTS["B"]),
        # alice@example.com (17): B may not list Alice; bob@example.com has 15 characters.
        ("B", "posts", f"1.0 / (length(author.address) - {len(ALICE)}) != 0", {"b_pub", "b_draft"}),
        ("B", "posts", "1.0 / (length(see_also.title) - 11) != 0", {"a_pub"}),
        ("B", "comments", "1.0 / (length(post.title) - 11) != 0", {"c_pub", "c_bdraft"}),
        ("A", "posts", "1.0 / (length(category.name) - 4) != 0", set()),  # "news", locked
    ],
)
async def test_failing_filters_on_hidden_rows_reveal_nothing(blog, who, collection, text, expected):
    """A filter that would raise (divide by zero) on a row hidden by the list rule or by a
    related list rule answers as if that row did not exist."""
    body = await page(blog, who, collection, filter=text)
    assert set(names(body["items"])) == expected


async def test_a_failing_filter_on_a_visible_row_is_the_callers_own_error(blog):
    await refused(
        blog, "B", "comments", 400, "invalid_filter", filter="1.0 / (length(text) - 4) != 0"
    )


# -- visible_to: many callers at once, the same answers as one GET per caller ---------------------

CALLERS = ["A", "B", "M", "anon"]


def caller_ids(callers: list[str]) -> list[str | None]:
    return [None if who == "anon" else IDS[who] for who in callers]


@pytest.mark.parametrize(
    ("collection", "record"), [(c, r) for c, records in SEEDED.items() for r in records]
)
async def test_visible_to_agrees_with_a_get_per_caller(blog, module_app, collection, record):
    answers = await visible_to(module_app.ctx, collection, IDS[record], caller_ids(CALLERS))
    statuses = [
        (await call(blog, who, "GET", url(collection, record))).status_code for who in CALLERS
    ]
    assert answers == [status == 200 for status in statuses]
    assert answers == [record in VIEWABLE[collection][who] for who in CALLERS]


@pytest.mark.parametrize("record", SEEDED["comments"])
async def test_visible_to_for_the_list_rule_agrees_with_the_list(blog, module_app, record):
    answers = await visible_to(
        module_app.ctx, "comments", IDS[record], caller_ids(CALLERS), operation="list"
    )
    assert answers == [record in LISTED_COMMENTS[who] for who in CALLERS]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("a_pub", [True, False, True, False]),
        ("a_draft", [True, False, True, False]),
        ("b_draft", [False, True, True, False]),
    ],
)
async def test_visible_to_evaluates_auth_fields_per_caller(blog, module_app, record, expected):
    """The delete rule (`author = auth.id OR auth.role = 'admin'`) for A, B, M and anonymous."""
    answers = await visible_to(
        module_app.ctx, "posts", IDS[record], caller_ids(CALLERS), operation="delete"
    )
    assert answers == expected


async def test_visible_to_edge_cases(blog, module_app):
    ctx = module_app.ctx
    mixed = caller_ids(["anon", "B", "anon", "A", "B"])
    assert await visible_to(ctx, "posts", IDS["b_draft"], mixed) == [
        False, True, False, False, True
    ]  # fmt: skip
    assert await visible_to(ctx, "posts", IDS["a_pub"], []) == []
    assert await visible_to(ctx, "posts", MISSING, caller_ids(CALLERS)) == [False] * 4
    assert await visible_to(ctx, "posts", str(uuid.uuid4()), [IDS["A"]]) == [False]
    assert await visible_to(ctx, "categories", IDS["news"], caller_ids(CALLERS)) == [False] * 4
