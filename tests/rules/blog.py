"""The app the authorization tests run against: a small blog (users, posts, comments, a locked
categories collection), its records with fixed ids, and the identities that call it.

Rules in brief:
- users: you list yourself (users with role admin list everyone); any signed-in user views any
  profile; you update yourself but never your role; create and delete are locked.
- posts: published posts and your own drafts; you create your own, edit your own (never handing
  them to someone else) and delete your own; users with role admin delete any.
- comments: listed when their post is; also viewable by their author; created on posts you see,
  as yourself; deleted by their author or the post's author.
- categories: no rules at all (locked).
- notes: private to their owner, with the README's update rule for "never hand it to someone
  else" written with body.* (`owner = auth.id AND (body.owner IS NULL OR body.owner = auth.id)`).
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import SERVICE_KEY, apply_schema, as_user

VISIBLE_POST = "published = true OR author = auth.id"
VISIBLE_PARENT = "post.published = true OR post.author = auth.id"

SCHEMA: dict[str, Any] = {
    "collections": {
        "users": {
            "fields": {
                "name": {"type": "text", "required": True},
                "address": {"type": "email", "unique": True},
                "secret": {"type": "text", "hidden": True},
                "role": {
                    "type": "select",
                    "values": ["member", "admin"],
                    "nullable": False,
                    "default": "member",
                },
            },
            "rules": {
                "list": "id = auth.id OR auth.role = 'admin'",
                "view": "auth.id IS NOT NULL",
                "create": None,
                "update": "id = auth.id AND body.role IS NULL",
                "delete": None,
            },
        },
        "categories": {"fields": {"name": "text"}},
        "notes": {
            "fields": {
                "text": "text",
                "owner": {"type": "relation", "collection": "users", "required": True},
            },
            "rules": {
                "list": "owner = auth.id",
                "view": "owner = auth.id",
                "create": "body.owner = auth.id",
                "update": "owner = auth.id AND (body.owner IS NULL OR body.owner = auth.id)",
                "delete": "owner = auth.id",
            },
        },
        "posts": {
            "fields": {
                "title": {"type": "text", "required": True},
                "body": "text",
                "published": {"type": "bool", "nullable": False, "default": False},
                "author": {
                    "type": "relation",
                    "collection": "users",
                    "required": True,
                    "on_delete": "cascade",
                },
                "category": {"type": "relation", "collection": "categories"},
                "see_also": {"type": "relation", "collection": "posts", "multiple": True},
                "note": {"type": "text", "hidden": True},
            },
            "search": ["title", "body"],
            "rules": {
                "list": VISIBLE_POST,
                "view": VISIBLE_POST,
                "create": "auth.id IS NOT NULL AND body.author = auth.id",
                "update": "author = auth.id",
                "delete": "author = auth.id OR auth.role = 'admin'",
            },
        },
        "comments": {
            "fields": {
                "text": {"type": "text", "required": True},
                "post": {
                    "type": "relation",
                    "collection": "posts",
                    "required": True,
                    "on_delete": "cascade",
                },
                "author": {
                    "type": "relation",
                    "collection": "users",
                    "required": True,
                    "on_delete": "cascade",
                },
                "flagged_by": {"type": "relation", "collection": "users", "hidden": True},
            },
            "rules": {
                "list": VISIBLE_PARENT,
                "view": f"author = auth.id OR {VISIBLE_PARENT}",
                "create": f"body.author = auth.id AND ({VISIBLE_PARENT})",
                "update": f"author = auth.id AND ({VISIBLE_PARENT})",
                "delete": "author = auth.id OR post.author = auth.id",
            },
        },
    }
}


def fixed_id(n: int) -> str:
    return f"0190f5a0-0000-7000-8000-{n:012d}"


# Every seeded record by name -> id. A, B and M are users (M has role admin).
IDS = {
    name: fixed_id(n)
    for n, name in enumerate(
        [
            "A", "B", "M",
            "news",
            "a_pub", "a_pub2", "a_draft", "b_pub", "b_draft",
            "c_pub", "c_self", "c_bdraft", "c_orphan",
        ],
        start=1,
    )
}  # fmt: skip
NAMES = {v: k for k, v in IDS.items()}
EMAILS = {"A": "alice@example.com", "B": "bob@example.com", "M": "mod@example.com"}
USER_NAMES = {"A": "Alice", "B": "Bob", "M": "Mallory"}
MISSING = fixed_id(999_999)  # a well-formed id no record has

USERS = [
    {"id": IDS[u], "name": USER_NAMES[u], "address": EMAILS[u], "secret": f"secret of {u}"}
    for u in ("A", "B", "M")
]
USERS[2]["role"] = "admin"


def _post(name: str, author: str, title: str, published: bool, **extra: Any) -> dict[str, Any]:
    body = {"id": IDS[name], "title": title, "author": IDS[author], "published": published}
    return {**body, "note": f"note on {name}", **extra}


POSTS = [
    _post("a_pub2", "A", "alpha second", True, body="plain"),
    _post("a_draft", "A", "alpha draft", False, body="shared word"),
    _post(
        "a_pub",
        "A",
        "alpha public",
        True,
        body="shared word",
        category=IDS["news"],
        see_also=[IDS["a_draft"], IDS["a_pub2"]],
    ),
    _post("b_pub", "B", "bravo public", True, body="plain"),
    _post("b_draft", "B", "bravo unpublished", False, body="shared word"),
]


def _comment(name: str, post: str, author: str, text: str) -> dict[str, Any]:
    return {"id": IDS[name], "post": IDS[post], "author": IDS[author], "text": text}


COMMENTS = [
    _comment("c_pub", "a_pub", "B", "nice"),
    _comment("c_self", "a_draft", "A", "note to self"),
    _comment("c_bdraft", "b_draft", "B", "todo"),
    # B commented while a_draft was published; A has since unpublished it.
    _comment("c_orphan", "a_draft", "B", "first!"),
]

# Who sees what: the expected answer of every list, by identity (service key: everything).
EVERYONE = ("anon", "A", "B", "M", "admin")
VISIBLE_POSTS = {
    "anon": {"a_pub", "a_pub2", "b_pub"},
    "A": {"a_pub", "a_pub2", "a_draft", "b_pub"},
    "B": {"a_pub", "a_pub2", "b_pub", "b_draft"},
    "M": {"a_pub", "a_pub2", "b_pub"},
    "admin": {"a_pub", "a_pub2", "a_draft", "b_pub", "b_draft"},
}
LISTED_COMMENTS = {
    "anon": {"c_pub"},
    "A": {"c_pub", "c_self", "c_orphan"},
    "B": {"c_pub", "c_bdraft"},
    "M": {"c_pub"},
    "admin": {"c_pub", "c_self", "c_bdraft", "c_orphan"},
}
VIEWABLE_COMMENTS = {**LISTED_COMMENTS, "B": {"c_pub", "c_bdraft", "c_orphan"}}
LISTED_USERS = {
    "anon": set(),
    "A": {"A"},
    "B": {"B"},
    "M": {"A", "B", "M"},
    "admin": {"A", "B", "M"},
}
VIEWABLE_USERS = {**{who: {"A", "B", "M"} for who in EVERYONE}, "anon": set()}


def headers(who: str) -> dict[str, str]:
    """Request headers acting as `who`: anon, admin (the service key) or a seeded user's name."""
    if who == "anon":
        return {}
    if who == "admin":
        return {"Authorization": f"Bearer {SERVICE_KEY}"}
    return as_user(IDS.get(who, who))


async def call(
    client: httpx.AsyncClient, who: str, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """One request acting as `who`."""
    return await client.request(method, path, headers=headers(who), **kwargs)


def names(items: list[dict[str, Any]]) -> list[str]:
    """Seeded records' names for their ids, in order (other ids as they are)."""
    return [NAMES.get(item["id"], item["id"]) for item in items]


def url(collection: str, name: str | None = None) -> str:
    base = f"/api/collections/{collection}/records"
    return f"{base}/{IDS.get(name, name)}" if name else base


async def seed(client: httpx.AsyncClient) -> None:
    """The schema and every record above, written with the service key."""
    await apply_schema(client, SCHEMA)
    admin = headers("admin")
    rows = [
        ("users", USERS),
        ("categories", [{"id": IDS["news"], "name": "news"}]),
        ("posts", POSTS),
        ("comments", COMMENTS),
    ]
    for collection, records in rows:
        for record in records:
            response = await client.post(url(collection), json=record, headers=admin)
            assert response.status_code == 201, response.text
