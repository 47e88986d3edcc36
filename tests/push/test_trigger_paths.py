"""Push triggers that follow relations: `to: post.author` notifies the author of the post a new
comment is on; paths go through single relations to a relation to users, under the filters'
depth limit, and anything else is refused when the schema is applied, saying what is wrong."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import RunningApp, apply_schema, as_user
from tests.push.conftest import ADMIN, idle, ios_token, set_apps

SCHEMA: dict[str, Any] = {
    "collections": {
        "blogs": {
            "fields": {
                "name": "text",
                "owners": {"type": "relation", "collection": "users", "multiple": True},
            },
            "rules": {"view": ""},  # posts link to blogs: their writers must see them
        },
        "posts": {
            "fields": {
                "title": "text",
                "author": {"type": "relation", "collection": "users"},
                "blog": {"type": "relation", "collection": "blogs"},
            },
            "rules": {"list": "", "view": "", "create": ""},
        },
        "comments": {
            "fields": {
                "text": "text",
                "post": {"type": "relation", "collection": "posts"},
                "author": {"type": "relation", "collection": "users"},
            },
            "rules": {"list": "", "view": "", "create": "author = auth.id"},
            "push": [
                {
                    "on": "create",
                    "to": "post.author",
                    "filter": "author != post.author",  # not for one's own comments
                    "title": "New comment on your post",
                    "body": "{{ record.text }}",
                },
                {"on": "create", "to": "post.blog.owners", "title": "Comment on your blog"},
            ],
        },
    }
}


async def create(api: httpx.AsyncClient, collection: str, headers: Any, **fields: Any) -> str:
    response = await api.post(
        f"/api/collections/{collection}/records", json=fields, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


async def phone(api: httpx.AsyncClient, user: str) -> str:
    body = {"platform": "ios", "token": ios_token()}
    response = await api.post("/api/push/devices", json=body, headers=as_user(user))
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


async def outbox_titles(api: httpx.AsyncClient, device: str, expected: int) -> list[str]:
    """The titles sent to `device`, once `expected` have arrived (the jobs run in the server)."""
    async with asyncio.timeout(10):
        while True:
            items = (await api.get("/api/push/outbox", headers=ADMIN)).json()["items"]
            mine = [i["title"] for i in items if i["device_id"] == device]
            if len(mine) >= expected:
                return mine
            await asyncio.sleep(0.05)


async def test_a_comment_notifies_the_posts_author_not_the_commenter(
    bare: httpx.AsyncClient, bare_app: RunningApp
) -> None:
    await set_apps(bare, {"dev": {"provider": "outbox"}})
    await apply_schema(bare, SCHEMA)
    ana = await create(bare, "users", ADMIN)
    ben = await create(bare, "users", ADMIN)
    owners = [await create(bare, "users", ADMIN) for _ in range(2)]
    ana_phone, ben_phone = await phone(bare, ana), await phone(bare, ben)
    owner_phones = [await phone(bare, o) for o in owners]
    blog = await create(bare, "blogs", ADMIN, name="b", owners=owners)
    post = await create(bare, "posts", as_user(ana), title="Hello", author=ana, blog=blog)
    await create(bare, "comments", as_user(ben), text="Nice post!", post=post, author=ben)
    assert await outbox_titles(bare, ana_phone, 1) == ["New comment on your post"]
    for owner_phone in owner_phones:  # the last relation may be multiple
        assert await outbox_titles(bare, owner_phone, 1) == ["Comment on your blog"]
    await create(bare, "comments", as_user(ana), text="Thanks", post=post, author=ana)
    await idle(bare_app)
    assert await outbox_titles(bare, ana_phone, 1) == ["New comment on your post"]  # not hers
    items = (await bare.get("/api/push/outbox", headers=ADMIN)).json()["items"]
    assert ben_phone not in {i["device_id"] for i in items}  # the commenter got nothing
    [note] = [i for i in items if i["device_id"] == ana_phone]
    assert note["body"] == "Nice post!" and note["user_id"] == ana


async def test_a_path_to_nothing_sends_nothing(
    bare: httpx.AsyncClient, bare_app: RunningApp
) -> None:
    await set_apps(bare, {"dev": {"provider": "outbox"}})
    await apply_schema(bare, SCHEMA)
    ben = await create(bare, "users", ADMIN)
    orphan = await create(bare, "posts", ADMIN, title="no author, no blog")
    await create(bare, "comments", as_user(ben), text="hi", post=orphan, author=ben)
    await create(bare, "comments", as_user(ben), text="no post", author=ben)
    await idle(bare_app)
    dead = await bare_app.ctx.db.fetchval("SELECT count(*) FROM baas.jobs WHERE status = 'dead'")
    assert dead == 0
    assert await bare_app.ctx.db.fetchval("SELECT count(*) FROM baas.push_messages") == 0


async def test_paths_that_do_not_lead_to_users_are_refused_saying_why(
    bare: httpx.AsyncClient,
) -> None:
    collections = SCHEMA["collections"]
    bad = [
        ("post.title", "post.title is a text field: the path needs relations"),
        ("post.blog", "post.blog is a relation to blogs: the path must end with one to users"),
        ("post.nope", "post.nope: no such field"),
        ("text.author", "text is a text field: the path needs relations"),
        ("post", "post is a relation to posts: the path must end with one to users"),
        (
            "watchers.author",
            "watchers holds several records: only the last relation of the path may",
        ),
    ]
    for to, problem in bad:
        comments = {
            **collections["comments"],
            "fields": {
                **collections["comments"]["fields"],
                "watchers": {"type": "relation", "collection": "posts", "multiple": True},
            },
            "push": [{"on": "create", "to": to, "title": "t"}],
        }
        document = {"collections": {**collections, "comments": comments}}
        response = await bare.post(
            "/api/admin/schema/diff", json={"document": document}, headers=ADMIN
        )
        assert response.status_code == 400, (to, response.text)
        assert f"collections.comments.push[0].to: {problem}" in response.json()["error"]["problems"]


async def test_a_path_may_go_through_as_many_relations_as_a_filter(bare: httpx.AsyncClient) -> None:
    """Filters stop at BAAS_MAX_PATH_DEPTH (3) relations before the last field: so do paths."""
    chain = {
        "a": {"fields": {"owner": {"type": "relation", "collection": "users"}}},
        "b": {"fields": {"a": {"type": "relation", "collection": "a"}}},
        "c": {"fields": {"b": {"type": "relation", "collection": "b"}}},
        "d": {"fields": {"c": {"type": "relation", "collection": "c"}}},
    }

    def with_trigger(to: str) -> dict[str, Any]:
        e = {
            "fields": {"d": {"type": "relation", "collection": "d"}},
            "push": [{"on": "create", "to": to, "title": "t"}],
        }
        return {"collections": {**chain, "e": e}}

    deep = with_trigger("d.c.b.a.owner")
    refused = await bare.post("/api/admin/schema/diff", json={"document": deep}, headers=ADMIN)
    assert refused.status_code == 400
    assert refused.json()["error"]["problems"] == [
        "collections.e.push[0].to: d.c.b.a.owner goes through 4 relations before its last field:"
        " at most 3, as in filters"
    ]
    ok = with_trigger("d.c.b.a")
    ok["collections"]["b"]["fields"]["a"] = {"type": "relation", "collection": "users"}
    accepted = await bare.post("/api/admin/schema/diff", json={"document": ok}, headers=ADMIN)
    assert accepted.status_code == 200, accepted.text
