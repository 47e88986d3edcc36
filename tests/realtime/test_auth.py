"""Authenticating a connection: `auth` -> `auth_ok`, bad tokens refused, one identity per
connection, and a token that expires (or whose session ends) taking its subscriptions with it."""

from __future__ import annotations

import time
from typing import Any

import jwt

from tests.realtime.conftest import Live, User

SCHEMA: dict[str, Any] = {
    "collections": {
        "notes": {
            "fields": {
                "text": "text",
                "owner": {"type": "relation", "collection": "users", "required": True},
            },
            "rules": {"list": "owner = auth.id", "view": "owner = auth.id"},
        },
        "posts": {"fields": {"title": "text"}, "rules": {"list": "", "view": ""}},
        "locked": {"fields": {"title": "text"}},
    }
}


async def test_auth_ok_names_the_user_and_the_expiry(live: Live) -> None:
    alice = await live.user("alice")
    ws = await live.connect()
    await ws.send({"type": "auth", "token": alice.token, "ref": "a"})
    ok = await ws.expect("auth_ok", kind="user", user=alice.id, ref="a")
    assert ok["expires_at"] == alice.expires_at
    await ws.send({"type": "ping"})
    await ws.expect("pong")


async def test_bad_tokens_are_refused_and_the_connection_goes_on(live: Live) -> None:
    await live.apply(SCHEMA)
    alice = await live.user("alice")
    ws = await live.connect()
    for token in [
        "nonsense",
        alice.token[:-4] + "AAAA",  # a bad signature
        "baas_sk_" + "x" * 40,  # an unknown service key
    ]:
        await ws.send({"type": "auth", "token": token})
        await ws.error("invalid_token")
    await ws.send({"type": "auth", "token": short_lived(live, alice, -120)})  # beyond leeway
    await ws.error("token_expired")
    # still anonymous: the locked collection is refused, a public one is fine
    await ws.send({"type": "subscribe", "id": "l", "collection": "locked"})
    await ws.error("forbidden", id="l")
    await ws.subscribe("p", "posts")
    await ws.request({"type": "auth", "token": alice.token}, "auth_ok", user=alice.id)

    admin = await live.connect()
    ok = await admin.request({"type": "auth", "token": live.settings.service_key}, "auth_ok")
    assert ok.get("user") is None
    await admin.subscribe("l", "locked")  # service keys bypass rules


async def test_a_connection_keeps_one_identity(live: Live) -> None:
    alice, bob = await live.user("alice"), await live.user("bob")
    ws = await live.connect(alice.token)
    await ws.send({"type": "auth", "token": bob.token})
    await ws.error("identity_changed")
    await ws.send({"type": "auth", "token": live.settings.service_key})
    await ws.error("identity_changed")
    # a new token of the same user (a refresh, or another session) is welcome
    again = await live.sign_in(alice)
    await ws.request({"type": "auth", "token": again.token}, "auth_ok", user=alice.id)


async def test_a_refused_re_auth_keeps_the_subscriptions(live: Live) -> None:
    await live.apply(SCHEMA)
    alice, bob = await live.user("alice"), await live.user("bob")
    ws = await live.connect(alice.token)
    await ws.subscribe("n", "notes")
    await ws.send({"type": "auth", "token": bob.token})
    await ws.error("identity_changed")
    await live.create("notes", {"text": "bob's", "owner": bob.id})
    note = await live.create("notes", {"text": "still alice's", "owner": alice.id})
    [change] = await ws.changes(1)
    assert change["record"]["id"] == note["id"]


def short_lived(live: Live, user: User, ttl_s: int) -> str:
    """A token of `user`'s session that expires in `ttl_s` seconds. The runtime setting
    `auth.access_token_ttl` goes down to 60 s only, so the server's own signer makes it."""
    claims = jwt.decode(user.token, options={"verify_signature": False})
    token, _exp = live.ctx.signer.sign(
        {k: claims[k] for k in ("sub", "sid", "role", "amr") if k in claims}, ttl_s
    )
    return token


async def test_an_expired_token_ends_the_subscriptions_that_needed_it(live: Live) -> None:
    await live.apply(SCHEMA)
    alice = await live.user("alice")
    ws = await live.connect()
    token = short_lived(live, alice, 2)
    ok = await ws.request({"type": "auth", "token": token}, "auth_ok", user=alice.id)
    await ws.subscribe("n", "notes")
    await ws.subscribe("p", "posts")  # a visitor could make this one: it goes on
    await live.create("notes", {"text": "before", "owner": alice.id})
    [before] = await ws.changes(1)
    assert before["sub"] == "n"

    assert ok["expires_at"] <= time.time() + 2
    await ws.expect("auth_expired", timeout=10)
    await ws.expect("unsubscribed", id="n", reason="token_expired")
    await live.create("notes", {"text": "after", "owner": alice.id})
    post = await live.create("posts", {"title": "still public"})
    [after] = await ws.changes(1)
    assert (after["sub"], after["record"]["id"]) == ("p", post["id"])
    await ws.no_changes(0.2)
    # a fresh token of the same user picks up again
    await ws.request({"type": "auth", "token": alice.token}, "auth_ok", user=alice.id)
    await ws.subscribe("n", "notes")


async def test_signing_out_ends_the_subscriptions_that_needed_the_session(live: Live) -> None:
    await live.apply(SCHEMA)
    alice = await live.user("alice")
    ws = await live.connect(alice.token)
    await ws.subscribe("n", "notes")
    await ws.subscribe("p", "posts")
    signed_out = await live.rest.post("/api/auth/sign-out", headers=alice.headers)
    assert signed_out.status_code in (200, 204), signed_out.text
    await ws.expect("auth_expired")
    await ws.expect("unsubscribed", id="n", reason="session_ended")
    await live.create("notes", {"text": "after", "owner": alice.id})
    post = await live.create("posts", {"title": "public"})
    [change] = await ws.changes(1)
    assert (change["sub"], change["record"]["id"]) == ("p", post["id"])
    # the ended session's token is no good any more
    await ws.send({"type": "auth", "token": alice.token})
    await ws.error("session_ended")
