"""What a subscriber is shown: records entering and leaving its view, never a hidden field (nor a
user's email or password hash), and `fields` and `expand` as REST applies them."""

from __future__ import annotations

import json
from typing import Any

from tests.realtime.clients import WsClient
from tests.realtime.conftest import ANON, PASSWORD, Live

ITEMS: dict[str, Any] = {
    "collections": {
        "items": {
            "fields": {
                "title": "text",
                "views": "integer",
                "public": {"type": "bool", "nullable": False, "default": False},
            },
            "rules": {"list": "public = true", "view": "public = true"},
        }
    }
}


async def test_records_enter_and_leave_the_list_rule(live: Live) -> None:
    await live.apply(ITEMS)
    ws = await live.connect()
    await ws.subscribe("s", "items")
    item = await live.create("items", {"title": "draft"})
    await live.update("items", item["id"], {"title": "still a draft"})
    await ws.no_changes(0.2)

    await live.update("items", item["id"], {"public": True, "title": "out"})
    [enter] = await ws.changes(1)
    assert enter["action"] == "enter"
    assert enter["record"] == await live.get("items", item["id"], ANON)

    await live.update("items", item["id"], {"views": 1})
    [update] = await ws.changes(1)
    assert update["action"] == "update"
    assert update["record"] == await live.get("items", item["id"], ANON)

    await live.update("items", item["id"], {"public": False, "title": "withdrawn, secretly"})
    [leave] = await ws.changes(1)
    assert leave["action"] == "leave"
    assert leave["record"]["id"] == item["id"]
    # as it was before: what the subscriber saw, never the values it may no longer see
    assert leave["record"] == update["record"]
    assert "secretly" not in json.dumps(ws.frames)

    await live.update("items", item["id"], {"views": 2})
    await live.delete("items", item["id"])
    await ws.no_changes(0.2)
    assert enter["change_id"] < update["change_id"] < leave["change_id"]


async def test_records_enter_and_leave_a_filter(live: Live) -> None:
    await live.apply(ITEMS)
    ws = await live.connect()
    await ws.subscribe("hot", "items", filter="views > 10")
    item = await live.create("items", {"title": "a", "views": 5, "public": True})
    await ws.no_changes(0.2)
    await live.update("items", item["id"], {"views": 20})
    await live.update("items", item["id"], {"views": 30})
    await live.update("items", item["id"], {"views": 3})
    enter, update, leave = await ws.changes(3)
    assert [enter["action"], update["action"], leave["action"]] == ["enter", "update", "leave"]
    assert enter["record"]["views"] == 20
    assert update["record"]["views"] == 30
    assert leave["record"]["views"] == 30  # as it was before

    # the filter holds but the rule stops holding: that is a leave too
    await live.update("items", item["id"], {"views": 50})
    await live.update("items", item["id"], {"public": False})
    back, gone = await ws.changes(2)
    assert (back["action"], gone["action"]) == ("enter", "leave")
    assert gone["record"]["public"] is True
    await live.delete("items", item["id"])
    await ws.no_changes(0.2)


SECRETS: dict[str, Any] = {
    "collections": {
        "posts": {
            "fields": {"title": "text", "secret": {"type": "text", "hidden": True}},
            "rules": {"list": "", "view": ""},
        },
        # rules may name hidden fields; events still never show them
        "gated": {
            "fields": {"title": "text", "secret": {"type": "text", "hidden": True}},
            "rules": {"list": "secret = 'open sesame'", "view": "secret = 'open sesame'"},
        },
    }
}


def assert_hidden(ws: WsClient, *values: str) -> None:
    text = "\n".join(ws.frames)
    for value in values:
        assert value not in text, f"{value!r} was sent"


async def test_hidden_fields_never_appear(live: Live) -> None:
    await live.apply(SECRETS)
    anon = await live.connect()
    admin = await live.connect(live.settings.service_key)
    for ws in (anon, admin):
        await ws.subscribe("p", "posts")
        await ws.subscribe("g", "gated")
    post = await live.create("posts", {"title": "t", "secret": "first-hidden-value"})
    await live.update("posts", post["id"], {"secret": "second-hidden-value", "title": "u"})
    await live.delete("posts", post["id"])
    gated = await live.create("gated", {"title": "g", "secret": "open sesame"})
    await live.update("gated", gated["id"], {"secret": "closed-hidden-value"})
    for ws in (anon, admin):
        got = await ws.changes(5)
        assert [(c["sub"], c["action"]) for c in got] == [
            ("p", "create"),
            ("p", "update"),
            ("p", "delete"),
            ("g", "create"),
            ("g", "leave" if ws is anon else "update"),
        ]
        for change in got:
            assert "secret" not in change["record"], change
        assert_hidden(ws, "first-hidden-value", "second-hidden-value", "open sesame")
        assert_hidden(ws, "closed-hidden-value")


async def test_users_events_never_carry_email_or_password_hash(live: Live) -> None:
    profiles = {
        "users": {"rules": {"list": "", "view": "", "update": "id = auth.id", "create": ""}}
    }
    await live.apply({"collections": profiles})
    anon = await live.connect()
    admin = await live.connect(live.settings.service_key)
    await anon.subscribe("u", "users")
    await admin.subscribe("u", "users")
    zed = await live.user("zed")
    await live.update("users", zed.id, {"name": "Zed"}, zed.headers)
    second = await live.sign_in(zed)  # a sign-in writes last_sign_in
    changed = await live.rest.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "password": "another fine passphrase 42"},
        headers=second.headers,
    )
    assert changed.status_code == 204, changed.text
    for ws in (anon, admin):
        seen: list[dict[str, Any]] = []
        while not any(c["record"].get("name") == "Zed" for c in seen):
            seen.extend(await ws.changes(1))
        seen.extend(await ws.drain(quiet=0.3))  # the sign-in's and the password change's
        assert seen[0]["action"] == "create"
        assert {c["record"]["id"] for c in seen} == {zed.id}
        for change in seen:
            assert "email" not in change["record"], change
            assert "password_hash" not in change["record"], change
        text = "\n".join(ws.frames)
        assert zed.email not in text
        assert "argon2" not in text
        assert "password_hash" not in text


PRIVATE = ("verified", "disabled", "anonymous")


async def test_users_events_show_private_fields_to_the_account_only(live: Live) -> None:
    """verified, disabled and anonymous reach the account itself and admins, in the record of a
    users event and in an expanded author alike; other users and visitors never see them."""
    await live.apply(
        {
            "collections": {
                "users": {
                    "rules": {"list": "", "view": "", "update": "id = auth.id", "create": ""}
                },
                "posts": {
                    "fields": {
                        "title": "text",
                        "author": {"type": "relation", "collection": "users"},
                    },
                    "rules": {"list": "", "view": ""},
                },
            }
        }
    )
    zed, amy = await live.user("zed"), await live.user("amy")
    watchers = {
        "zed": await live.connect(zed.token),
        "amy": await live.connect(amy.token),
        "anon": await live.connect(),
        "admin": await live.connect(live.settings.service_key),
    }
    for ws in watchers.values():
        await live.settle(ws)  # the sign-ups' own changes are behind us
        await ws.subscribe("u", "users")
        await ws.subscribe("p", "posts", expand="author")
    await live.update("users", zed.id, {"name": "Zed"}, zed.headers)
    post = await live.create("posts", {"title": "hi", "author": zed.id})
    for name, ws in watchers.items():
        sees = PRIVATE if name in ("zed", "admin") else ()
        event = await ws.change_for("u")
        assert (event["action"], event["record"]["name"]) == ("update", "Zed")
        assert tuple(k for k in PRIVATE if k in event["record"]) == sees, (name, event)
        created = await ws.change_for("p")
        assert created["record"]["id"] == post["id"]
        author = created["record"]["expand"]["author"]
        assert author["id"] == zed.id
        assert tuple(k for k in PRIVATE if k in author) == sees, (name, created)
        if not sees:
            assert '"verified"' not in "\n".join(ws.frames), name


BOOKS: dict[str, Any] = {
    "collections": {
        "authors": {
            "fields": {
                "name": "text",
                "public": {"type": "bool", "nullable": False, "default": False},
            },
            "rules": {"list": "public = true", "view": "public = true"},
        },
        "books": {
            "fields": {
                "title": "text",
                "body": "text",
                "author": {"type": "relation", "collection": "authors"},
            },
            "rules": {"list": "", "view": ""},
        },
    }
}


async def test_fields_and_expand_shape_the_records(live: Live) -> None:
    await live.apply(BOOKS)
    shape = {"expand": "author", "fields": "id,title,author"}
    known = await live.create("authors", {"name": "Ann", "public": True})
    anonymous = await live.create("authors", {"name": "Pseudonym"})
    ws = await live.connect()
    await ws.subscribe("b", "books", **shape)

    first = await live.create("books", {"title": "one", "body": "long", "author": known["id"]})
    [c1] = await ws.changes(1)
    assert c1["record"] == await live.get("books", first["id"], ANON, **shape)
    assert c1["record"]["expand"]["author"]["name"] == "Ann"
    assert "body" not in c1["record"]

    # the author's own view rule applies to the embedded record
    second = await live.create("books", {"title": "two", "author": anonymous["id"]})
    [c2] = await ws.changes(1)
    assert c2["record"] == await live.get("books", second["id"], ANON, **shape)
    assert "Pseudonym" not in "\n".join(ws.frames)

    await live.update("authors", known["id"], {"name": "Ann B."})
    await live.update("books", first["id"], {"body": "longer"})
    [c3] = await ws.changes(1)
    assert c3["action"] == "update"
    assert c3["record"] == await live.get("books", first["id"], ANON, **shape)
    assert c3["record"]["expand"]["author"]["name"] == "Ann B."

    await live.update("authors", known["id"], {"public": False})
    await live.update("books", first["id"], {"title": "one, again"})
    [c4] = await ws.changes(1)
    assert c4["record"] == await live.get("books", first["id"], ANON, **shape)

    await live.delete("books", first["id"])
    [c5] = await ws.changes(1)
    assert c5["action"] == "delete"
    assert {k: v for k, v in c5["record"].items() if k != "expand"} == {
        "id": first["id"],
        "title": "one, again",
        "author": known["id"],
    }


async def test_bad_fields_and_expand_are_refused(live: Live) -> None:
    await live.apply({"collections": {**BOOKS["collections"], **SECRETS["collections"]}})
    ws = await live.connect(live.settings.service_key)
    # hidden fields cannot be asked for, not even by a service key
    await ws.send({"type": "subscribe", "id": "f", "collection": "posts", "fields": "id,secret"})
    await ws.error("invalid_parameter", id="f")
    await ws.send({"type": "subscribe", "id": "q", "collection": "posts", "filter": "secret = 'x'"})
    await ws.error("invalid_filter", id="q")
    for i, options in enumerate(
        [{"fields": "id,nope"}, {"expand": "nope"}, {"expand": "title"}, {"fields": ","}]
    ):
        await ws.send({"type": "subscribe", "id": f"s{i}", "collection": "books", **options})
        await ws.error("invalid_parameter", id=f"s{i}")


async def test_wide_records_and_their_expansions_reach_subscribers(live: Live) -> None:
    """Records with more fields than a PostgreSQL function takes arguments, and an expanded wide
    users record, arrive as REST shows them."""
    wide = {f"f{i:02d}": ("text", "integer", "datetime")[i % 3] for i in range(70)}
    values = {f"f{i:02d}": ("t", i, "2026-01-02T03:04:05.000000Z")[i % 3] for i in range(70)}
    await live.apply(
        {
            "collections": {
                "users": {
                    "fields": wide,
                    "rules": {"list": "", "view": "", "create": "", "update": "id = auth.id"},
                },
                "things": {
                    "fields": {**wide, "owner": {"type": "relation", "collection": "users"}},
                    "rules": {"list": "", "view": ""},
                },
            }
        }
    )
    owner = await live.user("wide")
    await live.update("users", owner.id, values, owner.headers)
    ws = await live.connect()
    await live.settle(ws)
    await ws.subscribe("t", "things", expand="owner")
    thing = await live.create("things", {**values, "owner": owner.id})
    [created] = await ws.changes(1)
    assert created["record"] == await live.get("things", thing["id"], ANON, expand="owner")
    assert {k: created["record"]["expand"]["owner"][k] for k in values} == values
