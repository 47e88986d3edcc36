"""The authorization matrix for writes: create, update, upsert and delete by every identity in the
blog (tests/rules/blog.py), batches that roll back as a whole, and answers that never tell a
hidden record from a missing one. Each row writes only records made for it, so rows share one
database; the seeded records are only read (parents, owners)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.records.scenarios import Ref, assert_error_shape, resolve
from tests.rules.blog import IDS, MISSING, call, url

SERVICE = "admin"


async def admin_get(client: httpx.AsyncClient, collection: str, rid: str) -> dict[str, Any] | None:
    """The record as stored (None when there is none), read with the service key."""
    response = await call(client, SERVICE, "GET", url(collection, rid))
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def admin_create(client: httpx.AsyncClient, collection: str, body: dict[str, Any]) -> str:
    rid = str(uuid.uuid4())
    response = await call(client, SERVICE, "POST", url(collection), json={"id": rid, **body})
    assert response.status_code == 201, response.text
    return rid


async def make(client: httpx.AsyncClient, kind: str) -> tuple[str, str]:
    """A fresh record for one row: (collection, id). `new` is an id no record has."""
    if kind == "new":
        return "", str(uuid.uuid4())
    if kind.startswith("post:"):  # post:<owner>:pub|draft
        _, owner, state = kind.split(":")
        body = {
            "title": f"{kind} {uuid.uuid4()}",
            "author": IDS[owner],
            "published": state == "pub",
        }
        return "posts", await admin_create(client, "posts", body)
    if kind.startswith("comment:"):  # comment:<author>:<seeded post>
        _, author, post = kind.split(":")
        body = {"text": "hello", "author": IDS[author], "post": IDS[post]}
        return "comments", await admin_create(client, "comments", body)
    if kind.startswith("note:"):  # note:<owner>
        body = {"text": "private", "owner": IDS[kind.split(":")[1]]}
        return "notes", await admin_create(client, "notes", body)
    if kind == "user":
        return "users", await admin_create(client, "users", {"name": "Fresh"})
    if kind == "category":
        return "categories", await admin_create(client, "categories", {"name": "fresh"})
    raise AssertionError(kind)


@dataclass(frozen=True)
class Write:
    """One request: `who` (or "self": the target user) sends `method` about a fresh `target`
    (None: the collection itself); `status` and `code` are expected."""

    who: str
    method: str
    collection: str
    target: str | None
    body: Any = None
    status: int = 200
    code: str | None = None
    bug: str | None = None

    @property
    def name(self) -> str:
        def short(value: Any) -> str:
            return value.name if isinstance(value, Ref) else str(value)[:12]

        body = "" if self.body is None else " {}"
        if self.body:
            body = " " + ",".join(f"{k}={short(v)}" for k, v in self.body.items())
        return f"{self.who} {self.method} {self.collection}/{self.target or ''}{body}"


def table(rows: list[Write]) -> Any:
    params = [
        pytest.param(row, id=row.name, marks=[pytest.mark.xfail(strict=True, reason=row.bug)])
        if row.bug
        else pytest.param(row, id=row.name)
        for row in rows
    ]
    return pytest.mark.parametrize("row", params)


DENIED = (403, "rule_denied")
FORBIDDEN = (403, "forbidden")
NOT_FOUND = (404, "record_not_found")
HIDDEN_TARGET = (400, "validation_failed")  # relation_not_found: a target the caller cannot view
TITLE = {"title": "changed"}
CREATES = [
    Write("anon", "POST", "posts", None, {"title": "t", "author": Ref("A")}, *HIDDEN_TARGET),  # anon views no user
    Write("A", "POST", "posts", None, {"title": "t", "author": Ref("A")}, 201),
    Write("A", "POST", "posts", None, {"title": "t", "author": Ref("A"), "published": True}, 201),
    Write("A", "POST", "posts", None, {"title": "t", "author": Ref("B")}, *DENIED),
    Write("B", "POST", "posts", None, {"title": "t", "author": Ref("A")}, *DENIED),
    Write("M", "POST", "posts", None, {"title": "t", "author": Ref("A")}, *DENIED),
    Write("A", "POST", "posts", None, {"title": "t"}, 400, "validation_failed"),
    Write(SERVICE, "POST", "posts", None, {"title": "t", "author": Ref("B")}, 201),
    Write("B", "POST", "comments", None, {"text": "x", "post": Ref("a_pub"), "author": Ref("B")}, 201),
    Write("B", "POST", "comments", None, {"text": "x", "post": Ref("b_draft"), "author": Ref("B")}, 201),
    Write("A", "POST", "comments", None, {"text": "x", "post": Ref("a_draft"), "author": Ref("A")}, 201),
    Write("B", "POST", "comments", None, {"text": "x", "post": Ref("a_draft"), "author": Ref("B")}, *HIDDEN_TARGET),
    Write("M", "POST", "comments", None, {"text": "x", "post": Ref("b_draft"), "author": Ref("M")}, *HIDDEN_TARGET),
    Write("B", "POST", "comments", None, {"text": "x", "post": Ref("a_pub"), "author": Ref("A")}, *DENIED),
    Write("anon", "POST", "comments", None, {"text": "x", "post": Ref("a_pub"), "author": Ref("A")}, *HIDDEN_TARGET),
    Write(SERVICE, "POST", "comments", None, {"text": "x", "post": Ref("a_draft"), "author": Ref("M")}, 201),
]  # fmt: skip

UPDATES = [
    Write("A", "PATCH", "posts", "post:A:pub", TITLE),
    Write("A", "PATCH", "posts", "post:A:draft", {"published": True, "note": "n"}),
    Write("A", "PATCH", "posts", "post:A:pub", {"author": Ref("B")}, *DENIED),
    Write("A", "PATCH", "posts", "post:A:pub", {"title": "t", "author": Ref("A")}),
    Write("A", "PATCH", "posts", "post:A:pub", {}),
    Write("B", "PATCH", "posts", "post:A:pub", TITLE, *NOT_FOUND),
    Write("B", "PATCH", "posts", "post:A:draft", TITLE, *NOT_FOUND),
    Write("B", "PATCH", "posts", "post:A:pub", {"author": Ref("B")}, *NOT_FOUND),
    Write("B", "PATCH", "posts", "post:A:pub", {}, *NOT_FOUND),
    Write("B", "PATCH", "posts", "post:A:draft", {}, *NOT_FOUND),
    Write("anon", "PATCH", "posts", "post:A:pub", TITLE, *NOT_FOUND),
    Write("M", "PATCH", "posts", "post:A:pub", TITLE, *NOT_FOUND),
    Write("B", "PATCH", "posts", "new", TITLE, *NOT_FOUND),
    Write(SERVICE, "PATCH", "posts", "post:A:draft", {"author": Ref("B")}),
    Write("B", "PATCH", "comments", "comment:B:a_pub", {"text": "edited"}),
    Write("B", "PATCH", "comments", "comment:B:a_pub", {"post": Ref("b_draft")}),
    Write("B", "PATCH", "comments", "comment:B:a_pub", {"post": Ref("a_draft")}, *HIDDEN_TARGET),
    Write("B", "PATCH", "comments", "comment:B:a_pub", {"author": Ref("A")}, *DENIED),
    Write("A", "PATCH", "comments", "comment:B:a_pub", {"text": "edited"}, *NOT_FOUND),
    Write("B", "PATCH", "comments", "comment:B:a_draft", {"text": "edited"}, *NOT_FOUND),
    Write("self", "PATCH", "users", "user", {"name": "Renamed", "secret": "s"}),
    Write("self", "PATCH", "users", "user", {"role": "admin"}, *DENIED),
    Write("A", "PATCH", "notes", "note:A", {"text": "edited"}),
    Write("A", "PATCH", "notes", "note:A", {"owner": Ref("A")}),
    Write("A", "PATCH", "notes", "note:A", {"owner": Ref("B")}, *DENIED),
    Write("B", "PATCH", "notes", "note:A", {"owner": Ref("B")}, *NOT_FOUND),
    Write("B", "PATCH", "notes", "note:A", {"text": "edited"}, *NOT_FOUND),
    Write("A", "PATCH", "users", "user", {"name": "x"}, *NOT_FOUND),
    Write("M", "PATCH", "users", "user", {"name": "x"}, *NOT_FOUND),
    Write("anon", "PATCH", "users", "user", {"name": "x"}, *NOT_FOUND),
    Write(SERVICE, "PATCH", "users", "user", {"role": "admin"}),
]  # fmt: skip

UPSERTS = [
    Write("A", "PUT", "posts", "post:A:pub", TITLE),
    Write("A", "PUT", "posts", "post:A:draft", {}),
    Write("A", "PUT", "posts", "post:A:pub", {"author": Ref("B")}, *DENIED),
    Write("B", "PUT", "posts", "post:A:pub", TITLE, *NOT_FOUND),
    Write("B", "PUT", "posts", "post:A:draft", TITLE, *NOT_FOUND),
    Write("B", "PUT", "posts", "post:A:draft", {}, *NOT_FOUND),
    Write("B", "PUT", "posts", "post:A:pub", {"title": "t", "author": Ref("B")}, *NOT_FOUND),
    Write("M", "PUT", "posts", "post:A:pub", TITLE, *NOT_FOUND),
    Write("anon", "PUT", "posts", "post:A:pub", TITLE, *NOT_FOUND),
    Write("A", "PUT", "posts", "new", {"title": "t", "author": Ref("A")}, 201),
    Write("A", "PUT", "posts", "new", {"title": "t", "author": Ref("B")}, *DENIED),
    Write("anon", "PUT", "posts", "new", {"title": "t", "author": Ref("A")}, *HIDDEN_TARGET),
    Write(SERVICE, "PUT", "posts", "new", {"title": "t", "author": Ref("M")}, 201),
    Write(SERVICE, "PUT", "posts", "post:A:draft", {"author": Ref("B")}),
    Write("A", "PUT", "notes", "note:A", {"owner": Ref("B")}, *DENIED),
    Write("B", "PUT", "comments", "new", {"text": "x", "post": Ref("a_draft"), "author": Ref("B")}, *HIDDEN_TARGET),
    Write("B", "PUT", "comments", "new", {"text": "x", "post": Ref("a_pub"), "author": Ref("B")}, 201),
    Write("B", "PUT", "comments", "comment:B:a_pub", {"text": "edited"}),
    Write("A", "PUT", "comments", "comment:B:a_pub", {"text": "edited"}, *NOT_FOUND),
]  # fmt: skip

DELETES = [
    Write("A", "DELETE", "posts", "post:A:pub", status=204),
    Write("A", "DELETE", "posts", "post:A:draft", status=204),
    Write("B", "DELETE", "posts", "post:A:pub", None, *NOT_FOUND),
    Write("B", "DELETE", "posts", "post:A:draft", None, *NOT_FOUND),
    Write("anon", "DELETE", "posts", "post:A:pub", None, *NOT_FOUND),
    Write("B", "DELETE", "posts", "new", None, *NOT_FOUND),
    # auth.role: users with role admin (M) may delete any post, even one they cannot view.
    Write("M", "DELETE", "posts", "post:A:draft", status=204),
    Write("M", "DELETE", "posts", "post:B:pub", status=204),
    Write(SERVICE, "DELETE", "posts", "post:B:draft", status=204),
    Write("B", "DELETE", "comments", "comment:B:a_pub", status=204),
    Write("A", "DELETE", "comments", "comment:B:a_pub", status=204),  # the post's author
    Write("B", "DELETE", "comments", "comment:B:a_draft", status=204),  # its author
    Write("M", "DELETE", "comments", "comment:B:a_pub", None, *NOT_FOUND),
    Write("anon", "DELETE", "comments", "comment:B:a_pub", None, *NOT_FOUND),
    Write("A", "DELETE", "comments", "comment:B:b_pub", None, *NOT_FOUND),
]

LOCKED = [
    Write(who, method, collection, target, body, *FORBIDDEN)
    for who in ("anon", "A", "B", "M")
    for method, collection, target, body in [
        ("POST", "categories", None, {"name": "n"}),
        ("PATCH", "categories", "category", {"name": "n"}),
        ("PUT", "categories", "category", {"name": "n"}),
        ("PUT", "categories", "new", {"name": "n"}),
        ("DELETE", "categories", "category", None),
        ("POST", "users", None, {"name": "n"}),
        ("DELETE", "users", "user", None),
    ]
] + [
    Write("self", "PUT", "users", "user", {"name": "n"}, *FORBIDDEN),  # create is locked
    Write("self", "DELETE", "users", "user", None, *FORBIDDEN),
    Write(SERVICE, "POST", "categories", None, {"name": "n"}, 201),
    Write(SERVICE, "PATCH", "categories", "category", {"name": "n"}),
    Write(SERVICE, "PUT", "categories", "category", {"name": "n"}),
    Write(SERVICE, "PUT", "categories", "new", {"name": "n"}, 201),
    Write(SERVICE, "DELETE", "categories", "category", status=204),
    Write(SERVICE, "POST", "users", None, {"name": "n"}, 201),
    Write(SERVICE, "DELETE", "users", "user", status=204),
]


async def check_write(client: httpx.AsyncClient, row: Write) -> None:
    """Send the row's request and check the answer and what was (or was not) written."""
    collection, rid = (row.collection, str(uuid.uuid4()))
    if row.target is not None:
        _, rid = await make(client, row.target)
    body = resolve(row.body, {**IDS, "self": rid})
    path = url(collection, rid) if row.target is not None else url(collection)
    if row.method == "POST":
        body = {"id": rid, **body}  # a chosen id, to find out afterwards whether it was written
    before = await admin_get(client, collection, rid)
    who = rid if row.who == "self" else row.who
    kwargs = {} if body is None else {"json": body}
    response = await call(client, who, row.method, path, **kwargs)
    assert response.status_code == row.status, response.text
    after = await admin_get(client, collection, rid)
    if row.status >= 400:
        assert_error_shape(response)
        assert response.json()["error"]["code"] == row.code
        assert after == before, "a refused write changed the record"
    elif row.method == "DELETE":
        assert before is not None and after is None
    else:
        assert after is not None and response.json() == after
        visible_values = {k: v for k, v in body.items() if k not in ("note", "secret")}
        assert visible_values.items() <= after.items()


@table(CREATES)
async def test_create(blog, row):
    await check_write(blog, row)


@table(UPDATES)
async def test_update(blog, row):
    await check_write(blog, row)


@table(UPSERTS)
async def test_upsert(blog, row):
    await check_write(blog, row)


@table(DELETES)
async def test_delete(blog, row):
    await check_write(blog, row)


@table(LOCKED)
async def test_locked_operations_are_for_service_keys(blog, row):
    await check_write(blog, row)


async def test_a_member_cannot_promote_themself(blog):
    """Whatever the answer's status, nothing is written."""
    _, me = await make(blog, "user")
    for role in ("admin", "member"):
        response = await call(blog, me, "PATCH", url("users", me), json={"role": role})
        assert response.status_code in (403, 404), response.text
    stored = await admin_get(blog, "users", me)
    assert stored is not None and stored["role"] == "member"


async def test_auth_fields_are_read_at_each_request(blog):
    """delete: `author = auth.id OR auth.role = 'admin'`; the role is looked up per request."""
    _, mod = await make(blog, "user")
    posts = [(await make(blog, "post:A:draft"))[1] for _ in range(3)]
    assert (await call(blog, mod, "DELETE", url("posts", posts[0]))).status_code == 404
    await call(blog, SERVICE, "PATCH", url("users", mod), json={"role": "admin"})
    assert (await call(blog, mod, "DELETE", url("posts", posts[1]))).status_code == 204
    await call(blog, SERVICE, "PATCH", url("users", mod), json={"role": "member"})
    assert (await call(blog, mod, "DELETE", url("posts", posts[2]))).status_code == 404
    assert [await admin_get(blog, "posts", p) is not None for p in posts] == [True, False, True]


# -- a hidden record answers exactly like a missing one ------------------------------------------


def without_request_id(response: httpx.Response) -> tuple[int, str, Any]:
    """An error answer, all but its request id (which differs on every request)."""
    assert response.status_code >= 400, response.text
    body = response.json()
    body["error"].pop("request_id")
    return response.status_code, response.headers["content-type"], body


PROBES = [
    ("GET", None),
    ("PATCH", {"title": "mine now"}),
    ("PATCH", {"author": IDS["B"]}),
    ("PATCH", {}),
    ("PUT", {"title": "mine now"}),
    ("PUT", {"title": "mine now", "author": IDS["B"]}),
    ("DELETE", None),
]


HIDDEN_FROM = [
    ("B", "post:A:draft"),
    ("anon", "post:A:draft"),
    ("M", "post:B:draft"),
    ("anon", "post:B:draft"),
    ("M", "comment:B:a_draft"),
    ("anon", "comment:B:a_draft"),
]


@pytest.mark.parametrize(
    ("who", "target", "method", "body"),
    [
        pytest.param(who, target, method, body, id=f"{who} {method} {target} {body}")
        for who, target in HIDDEN_FROM
        for method, body in PROBES
        # M may delete any post (auth.role = 'admin'), even one M cannot view.
        if not (method == "DELETE" and who == "M" and target.startswith("post:"))
    ],
)
async def test_a_hidden_record_answers_like_a_missing_one(blog, who, target, method, body):
    if target.startswith("comment:") and body:
        body = {"text": "mine now"}
    collection, rid = await make(blog, target)
    before = await admin_get(blog, collection, rid)
    kwargs = {} if body is None else {"json": body}
    hidden = await call(blog, who, method, url(collection, rid), **kwargs)
    assert_error_shape(hidden)
    answer = without_request_id(hidden)
    assert answer[0] == 404 and answer[2]["error"]["code"] == "record_not_found"
    for missing in (MISSING, "not-a-uuid"):
        get = await call(blog, who, "GET", url(collection, missing))
        assert without_request_id(get) == answer
        if method in ("PATCH", "DELETE"):
            same = await call(blog, who, method, url(collection, missing), **kwargs)
            assert without_request_id(same) == answer
    assert await admin_get(blog, collection, rid) == before


@pytest.mark.parametrize(
    ("method", "body"),
    [
        pytest.param(
            method,
            body,
            id=f"{method} {body}",
            marks=[],
        )
        for method, body in PROBES
        if method != "GET"
    ],
)
async def test_a_record_you_may_view_but_not_change_answers_like_a_missing_one(blog, method, body):
    """B sees A's published post, yet changing it answers exactly like a missing record."""
    _, rid = await make(blog, "post:A:pub")
    before = await admin_get(blog, "posts", rid)
    kwargs = {} if body is None else {"json": body}
    answer = without_request_id(await call(blog, "B", method, url("posts", rid), **kwargs))
    missing = without_request_id(await call(blog, "B", "GET", url("posts", MISSING)))
    assert answer == missing
    assert await admin_get(blog, "posts", rid) == before


async def test_put_to_a_free_id_creates_so_only_then_it_differs(blog):
    """PUT creates at a free id by definition: the one answer that differs from a taken id is
    the success (or the create rule's verdict) that any create would give. Ids are UUIDs."""
    _, draft = await make(blog, "post:A:draft")
    body = {"title": "t", "author": IDS["B"]}
    taken = await call(blog, "B", "PUT", url("posts", draft), json=body)
    free = await call(blog, "B", "PUT", url("posts", str(uuid.uuid4())), json=body)
    assert (taken.status_code, free.status_code) == (404, 201)
    stored = await admin_get(blog, "posts", draft)
    assert stored is not None and stored["author"] == IDS["A"]


# -- batches: all or nothing, each operation under the caller's rules -----------------------------


def create(collection: str, **body: Any) -> dict[str, Any]:
    return {"op": "create", "collection": collection, "body": body}


def op(kind: str, collection: str, rid: Any, **body: Any) -> dict[str, Any]:
    return {"op": kind, "collection": collection, "id": rid, "body": body}


@dataclass(frozen=True)
class Batch:
    name: str
    who: str
    operations: list[dict[str, Any]]
    status: int
    code: str
    failing: int


# Refs: a_pub/a_draft/b_pub are fresh posts of A and B; x and y are free ids.
BATCHES = [
    Batch("B creates then deletes A's post", "B", [
        create("posts", id=Ref("x"), title="x", author=Ref("B")),
        op("delete", "posts", Ref("a_pub")),
    ], *NOT_FOUND, 1),
    Batch("A creates own then one for B", "A", [
        create("posts", id=Ref("x"), title="x", author=Ref("A")),
        create("posts", id=Ref("y"), title="y", author=Ref("B")),
    ], *DENIED, 1),
    Batch("A edits own then creates a user", "A", [
        op("update", "posts", Ref("a_pub"), title="changed"),
        create("users", name="n"),
    ], *FORBIDDEN, 1),
    Batch("M deletes A's draft (role) then edits A's post", "M", [
        op("delete", "posts", Ref("a_draft")),
        op("update", "posts", Ref("a_pub"), title="changed"),
    ], *NOT_FOUND, 1),
    Batch("B comments on a visible then a hidden post", "B", [
        create("comments", id=Ref("x"), text="x", post=Ref("a_pub"), author=Ref("B")),
        create("comments", id=Ref("y"), text="y", post=Ref("a_draft"), author=Ref("B")),
    ], *HIDDEN_TARGET, 1),
    Batch("B edits own post then hands it to A", "B", [
        op("update", "posts", Ref("b_pub"), title="changed"),
        op("update", "posts", Ref("b_pub"), author=Ref("A")),
    ], *DENIED, 1),
    Batch("B upserts a new post then A's draft", "B", [
        op("upsert", "posts", Ref("x"), title="x", author=Ref("B")),
        op("upsert", "posts", Ref("a_draft"), title="mine"),
    ], *NOT_FOUND, 1),
    Batch("B deletes own post then A's draft", "B", [
        op("delete", "posts", Ref("b_pub")),
        op("delete", "posts", Ref("a_draft")),
    ], *NOT_FOUND, 1),
    Batch("anonymous comment", "anon", [
        create("comments", id=Ref("x"), text="x", post=Ref("a_pub"), author=Ref("A")),
    ], *HIDDEN_TARGET, 0),
]  # fmt: skip


async def fresh_batch_ids(client: httpx.AsyncClient) -> dict[str, str]:
    ids = {**IDS, "x": str(uuid.uuid4()), "y": str(uuid.uuid4())}
    for name, kind in (
        ("a_pub", "post:A:pub"),
        ("a_draft", "post:A:draft"),
        ("b_pub", "post:B:pub"),
    ):
        ids[name] = (await make(client, kind))[1]
    return ids


async def snapshot(client: httpx.AsyncClient, ids: dict[str, str]) -> list[Any]:
    return [
        await admin_get(client, collection, ids[name])
        for collection in ("posts", "comments")
        for name in ("a_pub", "a_draft", "b_pub", "x", "y")
    ]


@pytest.mark.parametrize("batch", BATCHES, ids=[b.name for b in BATCHES])
async def test_a_refused_operation_rolls_the_whole_batch_back(blog, batch):
    ids = await fresh_batch_ids(blog)
    before = await snapshot(blog, ids)
    body = {"operations": resolve(batch.operations, ids)}
    response = await call(blog, batch.who, "POST", "/api/batch", json=body)
    assert response.status_code == batch.status, response.text
    assert_error_shape(response)
    error = response.json()["error"]
    assert (error["code"], error["operation"]) == (batch.code, batch.failing)
    assert await snapshot(blog, ids) == before


async def test_a_batch_of_allowed_operations_commits(blog):
    ids = await fresh_batch_ids(blog)
    operations = [
        create("posts", id=Ref("x"), title="x", author=Ref("A")),
        op("update", "posts", Ref("x"), published=True),
        create("comments", id=Ref("y"), text="y", post=Ref("x"), author=Ref("A")),
        op("delete", "posts", Ref("a_pub")),
        op("upsert", "posts", Ref("a_draft"), title="renamed"),
        create("comments", text="z", post=Ref("b_pub"), author=Ref("A")),
    ]
    response = await call(
        blog, "A", "POST", "/api/batch", json={"operations": resolve(operations, ids)}
    )
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == [201, 200, 201, 204, 200, 201]
    post = await admin_get(blog, "posts", ids["x"])
    assert post is not None and post["published"] is True
    assert await admin_get(blog, "comments", ids["y"]) is not None
    assert await admin_get(blog, "posts", ids["a_pub"]) is None
    draft = await admin_get(blog, "posts", ids["a_draft"])
    assert draft is not None and draft["title"] == "renamed"


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT"])
@pytest.mark.parametrize("who", ["B", "M"])
async def test_a_hidden_parent_answers_like_a_missing_one(blog, method, who):
    """Pointing a comment at a post the caller cannot view (A's draft) is answered exactly like
    pointing it at no post at all: 400 relation_not_found, whatever the create and update rules
    say (so nobody learns that the draft exists, nor comments on it)."""
    answers = []
    for parent in (IDS["a_draft"], MISSING):
        _, rid = await make(blog, f"comment:{who}:a_pub")
        before = await admin_get(blog, "comments", rid)
        body: dict[str, Any] = {"post": parent}
        path = url("comments", rid)
        if method == "POST":
            body, path = {"text": "x", "author": IDS[who], **body}, url("comments")
        response = await call(blog, who, method, path, json=body)
        answers.append(without_request_id(response))
        assert await admin_get(blog, "comments", rid) == before
    assert answers[0] == answers[1]
    status, _, error = answers[0]
    assert (status, error["error"]["code"]) == (400, "validation_failed")
    assert error["error"]["fields"] == {
        "post": {"code": "relation_not_found", "message": "points to a record that does not exist"}
    }


async def test_a_hidden_target_in_a_list_answers_like_a_missing_one(blog):
    """see_also (posts -> posts, several): one id of a post B cannot view, among visible ones,
    is answered as one missing id; B's own draft, visible to B, is linked."""
    _, mine = await make(blog, "post:B:pub")
    _, draft = await make(blog, "post:B:draft")
    answers = []
    for other in (IDS["a_draft"], MISSING):
        body = {"see_also": [IDS["a_pub"], other]}
        response = await call(blog, "B", "PATCH", url("posts", mine), json=body)
        answers.append(without_request_id(response))
    assert answers[0] == answers[1]
    assert answers[0][2]["error"]["fields"]["see_also"]["code"] == "relation_not_found"
    linked = await call(
        blog, "B", "PATCH", url("posts", mine), json={"see_also": [IDS["a_pub"], draft]}
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["see_also"] == [IDS["a_pub"], draft]


async def test_a_link_made_while_visible_survives_other_changes(blog):
    """A link is checked when it is made: once its target is hidden from the caller (A
    unpublishes the post B linked to), B still edits the record, and may send the same links
    again; only a new target is checked."""
    _, theirs = await make(blog, "post:A:pub")
    _, mine = await make(blog, "post:B:pub")
    linked = await call(blog, "B", "PATCH", url("posts", mine), json={"see_also": [theirs]})
    assert linked.status_code == 200, linked.text
    hidden = await call(blog, SERVICE, "PATCH", url("posts", theirs), json={"published": False})
    assert hidden.status_code == 200, hidden.text
    for body in ({"title": "edited"}, {"see_also": [theirs]}):
        response = await call(blog, "B", "PATCH", url("posts", mine), json=body)
        assert response.status_code == 200, (body, response.text)
        assert response.json()["see_also"] == [theirs]
    again = await call(
        blog, "B", "PATCH", url("posts", mine), json={"see_also": [theirs, IDS["a_draft"]]}
    )
    assert again.status_code == 400, again.text
    assert again.json()["error"]["fields"]["see_also"]["code"] == "relation_not_found"
    put = await call(blog, "B", "PUT", url("posts", mine), json={"see_also": [theirs]})
    assert put.status_code == 200, put.text


async def test_expand_shows_a_hidden_target_as_a_missing_one(blog):
    """In `expand`, a related record the caller cannot view is what a deleted one is: absent
    from a list, null for a single relation."""
    _, gone = await make(blog, "post:B:pub")
    _, mine = await make(blog, "post:B:pub")
    body = {"see_also": [IDS["a_pub2"], IDS["a_draft"], gone]}
    assert (await call(blog, SERVICE, "PATCH", url("posts", mine), json=body)).status_code == 200
    assert (await call(blog, SERVICE, "DELETE", url("posts", gone))).status_code == 204
    seen = await call(blog, "B", "GET", url("posts", mine), params={"expand": "see_also"})
    assert seen.status_code == 200, seen.text
    assert seen.json()["see_also"] == [IDS["a_pub2"], IDS["a_draft"]]  # the record's own value
    assert [p["id"] for p in seen.json()["expand"]["see_also"]] == [IDS["a_pub2"]]
    _, comment = await make(blog, "comment:B:a_draft")
    seen = await call(blog, "B", "GET", url("comments", comment), params={"expand": "post"})
    assert seen.status_code == 200, seen.text
    assert seen.json()["expand"] == {"post": None}
