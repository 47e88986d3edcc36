"""Sessions over HTTP: refresh-token rotation, reuse detection and its grace window, listing and
ending sessions, what ends them (sign-out, password change, admin disable and delete), and a
revocation seen by a second server process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import ADMIN, PASSWORD, Account, configure, sign_in
from tests.e2e.servers import eventually, running

# -- helpers -----------------------------------------------------------------------------------


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": token})


async def _me(client: httpx.AsyncClient, account: Account | dict[str, Any]) -> httpx.Response:
    tokens = account.tokens if isinstance(account, Account) else account
    return await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )


def _code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


async def _ended(client: httpx.AsyncClient, account: Account) -> None:
    """The session is over: its access token and its refresh token are both refused."""
    me = await _me(client, account)
    assert me.status_code == 401, me.text
    assert _code(me) == "session_ended"
    refreshed = await _refresh(client, account.tokens["refresh_token"])
    assert refreshed.status_code == 401, refreshed.text
    assert _code(refreshed) in ("session_ended", "invalid_refresh_token")


async def _alive(client: httpx.AsyncClient, account: Account) -> None:
    me = await _me(client, account)
    assert me.status_code == 200, me.text


# -- refresh -----------------------------------------------------------------------------------


async def test_refresh_rotates_the_token(anon: httpx.AsyncClient, alice: Account) -> None:
    first = alice.tokens["refresh_token"]
    response = await _refresh(anon, first)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refresh_token"] != first
    assert body["session_id"] == alice.tokens["session_id"]
    assert body["token_type"] == "Bearer"
    assert (await _me(anon, body)).json()["id"] == alice.id
    second = (await _refresh(anon, body["refresh_token"])).json()
    assert second["refresh_token"] not in (first, body["refresh_token"])
    assert second["session_id"] == alice.tokens["session_id"]


async def test_retired_token_inside_the_grace_window_answers_the_current_tokens(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    old = alice.tokens["refresh_token"]
    current = (await _refresh(anon, old)).json()
    again = await _refresh(anon, old)
    assert again.status_code == 200, again.text
    assert again.json()["refresh_token"] == current["refresh_token"]
    assert again.json()["session_id"] == alice.tokens["session_id"]
    assert (await _me(anon, again.json())).status_code == 200
    # Still signed in: the current token rotates as usual and the first access token works.
    assert (await _refresh(anon, current["refresh_token"])).status_code == 200
    await _alive(anon, alice)


async def test_concurrent_refreshes_with_one_token_both_succeed(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    token = alice.tokens["refresh_token"]
    answers = await asyncio.gather(*(_refresh(anon, token) for _ in range(4)))
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    newest = {a.json()["refresh_token"] for a in answers}
    assert len(newest) == 1  # one rotation; the racers were told its result
    assert token not in newest
    for answer in answers:
        assert (await _me(anon, answer.json())).status_code == 200
    assert (await _refresh(anon, newest.pop())).status_code == 200


async def test_reuse_outside_the_grace_window_ends_the_session(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    await configure(anon, auth__refresh_grace_s=0)
    other = await sign_in(anon, alice.email)  # another device of the same account
    old = alice.tokens["refresh_token"]
    newest = (await _refresh(anon, old)).json()
    replayed = await _refresh(anon, old)
    assert replayed.status_code == 401, replayed.text
    assert _code(replayed) == "refresh_token_reused"
    # The whole session is over, at once on this instance: old and newest refresh tokens and
    # every access token the session was given.
    for token in (newest["refresh_token"], old):
        refused = await _refresh(anon, token)
        assert refused.status_code == 401
        assert _code(refused) == "session_ended"
    for tokens in (alice.tokens, newest):
        me = await _me(anon, tokens)
        assert me.status_code == 401, me.text
        assert _code(me) == "session_ended"
    await _alive(anon, other)  # only the replayed session ends


async def test_unknown_or_malformed_refresh_tokens_are_401_missing_ones_400(
    anon: httpx.AsyncClient,
) -> None:
    for body in (
        {"refresh_token": "x" * 43},
        {"refresh_token": "short"},
        {"refresh_token": "x" * 5000},
    ):
        response = await anon.post("/api/auth/refresh", json=body)
        assert response.status_code == 401, (body, response.text)
        assert _code(response) == "invalid_refresh_token"
    for body in ({"refresh_token": 12345}, {"refresh_token": None}, {}):  # no token was sent
        response = await anon.post("/api/auth/refresh", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["fields"]["refresh_token"]["code"] in (
            "required",
            "invalid_type",
        )
    for raw in ("[]", '"a string"', "not json"):
        response = await anon.post(
            "/api/auth/refresh", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (raw, response.text)


# -- listing and ending sessions ------------------------------------------------------------------


async def test_list_sessions_marks_the_current_one(anon: httpx.AsyncClient, alice: Account) -> None:
    phone = await sign_in(anon, alice.email)
    listed = await anon.get("/api/auth/sessions", headers=alice.headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert {s["id"] for s in items} == {alice.tokens["session_id"], phone.tokens["session_id"]}
    current = {s["id"]: s["current"] for s in items}
    assert current == {alice.tokens["session_id"]: True, phone.tokens["session_id"]: False}
    assert all(s["amr"] == ["pwd"] and "ip" in s and "user_agent" in s for s in items)
    other_view = (await anon.get("/api/auth/sessions", headers=phone.headers)).json()["items"]
    assert {s["id"]: s["current"] for s in other_view}[phone.tokens["session_id"]] is True

    unauthenticated = await anon.get("/api/auth/sessions")
    assert unauthenticated.status_code == 401
    admin_view = await anon.get(f"/api/admin/users/{alice.id}/sessions", headers=ADMIN)
    assert len(admin_view.json()["items"]) == 2


async def test_delete_one_session(anon: httpx.AsyncClient, alice: Account) -> None:
    phone = await sign_in(anon, alice.email)
    bob = await _create_and_sign_in(anon, "bob@example.com")
    sid = phone.tokens["session_id"]

    # Another account's session is not found (and not ended).
    theirs = await anon.delete(f"/api/auth/sessions/{sid}", headers=bob.headers)
    assert theirs.status_code == 404 and _code(theirs) == "session_not_found"
    await _alive(anon, phone)
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        missing = await anon.delete(f"/api/auth/sessions/{bad}", headers=alice.headers)
        assert missing.status_code == 404 and _code(missing) == "session_not_found"

    ended = await anon.delete(f"/api/auth/sessions/{sid}", headers=alice.headers)
    assert ended.status_code == 204, ended.text
    await _ended(anon, phone)
    await _alive(anon, alice)
    await _alive(anon, bob)
    again = await anon.delete(f"/api/auth/sessions/{sid}", headers=alice.headers)
    assert again.status_code == 404
    listed = (await anon.get("/api/auth/sessions", headers=alice.headers)).json()["items"]
    assert [s["id"] for s in listed] == [alice.tokens["session_id"]]


async def test_delete_all_sessions_keeping_the_current_one(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    phone = await sign_in(anon, alice.email)
    tablet = await sign_in(anon, alice.email)
    response = await anon.delete("/api/auth/sessions?keep_current=true", headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"revoked": 2}
    await _ended(anon, phone)
    await _ended(anon, tablet)
    await _alive(anon, alice)
    assert (await _refresh(anon, alice.tokens["refresh_token"])).status_code == 200


@pytest.mark.parametrize("value", ["1", "True", "yes", "", "TRUE"])
async def test_keep_current_is_true_or_false_exactly(
    anon: httpx.AsyncClient, alice: Account, value: str
) -> None:
    """A loose boolean is refused, and nothing ends: read as false, it would end this session."""
    phone = await sign_in(anon, alice.email)
    response = await anon.delete(
        "/api/auth/sessions", params={"keep_current": value}, headers=alice.headers
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["parameter"], error["value"]) == (
        "invalid_boolean",
        "keep_current",
        value,
    )
    await _alive(anon, alice)
    await _alive(anon, phone)
    misspelt = await anon.delete("/api/auth/sessions?keepcurrent=true", headers=alice.headers)
    assert misspelt.status_code == 400, misspelt.text
    await _alive(anon, alice)
    kept = await anon.delete("/api/auth/sessions?keep_current=false", headers=alice.headers)
    assert kept.json() == {"revoked": 2}
    await _ended(anon, alice)


async def test_delete_all_sessions(anon: httpx.AsyncClient, alice: Account) -> None:
    phone = await sign_in(anon, alice.email)
    response = await anon.delete("/api/auth/sessions", headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"revoked": 2}
    await _ended(anon, phone)
    await _ended(anon, alice)


async def test_sign_out_with_the_access_token(anon: httpx.AsyncClient, alice: Account) -> None:
    phone = await sign_in(anon, alice.email)
    out = await anon.post("/api/auth/sign-out", headers=alice.headers)
    assert out.status_code == 204, out.text
    await _ended(anon, alice)
    await _alive(anon, phone)
    # Signing out twice with the same token: the session is already over.
    again = await anon.post("/api/auth/sign-out", headers=alice.headers)
    assert again.status_code == 401 and _code(again) == "session_ended"


async def test_sign_out_with_the_refresh_token(anon: httpx.AsyncClient, alice: Account) -> None:
    out = await anon.post(
        "/api/auth/sign-out", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert out.status_code == 204, out.text
    await _ended(anon, alice)

    # A retired refresh token (an app that kept the previous one) ends its session too.
    phone = await sign_in(anon, alice.email)
    assert (await _refresh(anon, phone.tokens["refresh_token"])).status_code == 200
    out = await anon.post(
        "/api/auth/sign-out", json={"refresh_token": phone.tokens["refresh_token"]}
    )
    assert out.status_code == 204
    await _ended(anon, phone)

    nothing = await anon.post("/api/auth/sign-out")
    assert nothing.status_code == 401
    unknown = await anon.post("/api/auth/sign-out", json={"refresh_token": "y" * 43})
    assert unknown.status_code == 204  # quietly: nothing to tell about unknown tokens


# -- what else ends sessions ------------------------------------------------------------------------


async def test_password_change_ends_the_other_sessions(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    phone = await sign_in(anon, alice.email)
    new_password = "a brand new passphrase 7"
    wrong = await anon.post(
        "/api/auth/password",
        json={"current_password": "not it at all", "password": new_password},
        headers=alice.headers,
    )
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "wrong_password")
    await _alive(anon, phone)

    changed = await anon.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "password": new_password},
        headers=alice.headers,
    )
    assert changed.status_code == 204, changed.text
    await _ended(anon, phone)
    await _alive(anon, alice)
    assert (await _refresh(anon, alice.tokens["refresh_token"])).status_code == 200
    old = await anon.post("/api/auth/sign-in", json={"email": alice.email, "password": PASSWORD})
    assert old.status_code == 401
    await sign_in(anon, alice.email, new_password)


async def test_admin_disable_ends_sessions_at_once(anon: httpx.AsyncClient, alice: Account) -> None:
    phone = await sign_in(anon, alice.email)
    response = await anon.patch(
        f"/api/admin/users/{alice.id}", json={"disabled": True}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    assert response.json()["active_sessions"] == 0
    await _ended(anon, alice)
    await _ended(anon, phone)
    again = await anon.post("/api/auth/sign-in", json={"email": alice.email, "password": PASSWORD})
    assert again.status_code == 403 and _code(again) == "account_disabled"


async def test_admin_revoke_sessions(anon: httpx.AsyncClient, alice: Account) -> None:
    response = await anon.delete(f"/api/admin/users/{alice.id}/sessions", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json() == {"revoked": 1}
    await _ended(anon, alice)


async def test_deleting_a_user_ends_their_sessions(anon: httpx.AsyncClient, alice: Account) -> None:
    phone = await sign_in(anon, alice.email)
    assert (await _refresh(anon, phone.tokens["refresh_token"])).status_code == 200
    response = await anon.delete(f"/api/admin/users/{alice.id}", headers=ADMIN)
    assert response.status_code == 204, response.text
    await _ended(anon, alice)
    await _ended(anon, phone)
    # The retired refresh token, too, is worth nothing now.
    assert (await _refresh(anon, phone.tokens["refresh_token"])).status_code == 401


async def _create_and_sign_in(client: httpx.AsyncClient, email: str) -> Account:
    created = await client.post(
        "/api/admin/users",
        json={"email": email, "password": PASSWORD, "verified": True},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    return await sign_in(client, email)


# -- across server processes ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_revoked_session_is_refused_by_another_server(database_url: str, tmp_path: Path) -> None:
    # Instances of one install share its public URL (the tokens' issuer), as behind a proxy.
    env = {"BAAS_DATABASE_URL": database_url, "BAAS_PUBLIC_URL": "https://api.example.com"}
    with (
        running(tmp_path, env, name="a") as a,
        running(tmp_path, env, name="b") as b,
        a.client() as ca,
        b.client() as cb,
    ):
        created = ca.post(
            "/api/admin/users",
            json={"email": "carol@example.com", "password": PASSWORD, "verified": True},
        )
        assert created.status_code == 201, created.text
        signed_in = ca.post(
            "/api/auth/sign-in", json={"email": "carol@example.com", "password": PASSWORD}
        ).json()
        carol = {"Authorization": f"Bearer {signed_in['access_token']}"}

        def status_on_b() -> int:
            return cb.get("/api/auth/me", headers=carol).status_code

        assert status_on_b() == 200, cb.get("/api/auth/me", headers=carol).text
        ended = ca.delete(f"/api/auth/sessions/{signed_in['session_id']}", headers=carol)
        assert ended.status_code == 204, ended.text
        eventually(lambda: status_on_b() == 401, timeout=3)
        assert cb.get("/api/auth/me", headers=carol).json()["error"]["code"] == "session_ended"
        refreshed = cb.post("/api/auth/refresh", json={"refresh_token": signed_in["refresh_token"]})
        assert refreshed.status_code == 401


async def test_sign_ins_at_the_session_cap_take_turns(
    anon: httpx.AsyncClient, alice: Account, ctx: Any
) -> None:
    """An account at its cap of sessions: concurrent sign-ins each end the oldest one, without
    deadlocking on the rows they both want to end, and the cap holds."""
    from baas.auth.flows import MAX_SESSIONS

    await configure(anon, rate__sign_in_ip="off", rate__sign_in_account="off")
    await ctx.db.execute(
        "INSERT INTO baas.sessions (subject, role, expires, max_expires, last_used) "
        "SELECT $1, 'user', now() + interval '1 day', now() + interval '1 day', "
        "now() - make_interval(secs => n) FROM generate_series(1, $2) AS n",
        alice.id,
        MAX_SESSIONS,
    )
    body = {"email": alice.email, "password": PASSWORD}
    for _ in range(5):
        answers = await asyncio.gather(
            *(anon.post("/api/auth/sign-in", json=body) for _ in range(8))
        )
        assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers]
    active = await ctx.db.fetchval(
        "SELECT count(*) FROM baas.sessions WHERE subject = $1 AND revoked IS NULL", alice.id
    )
    assert active == MAX_SESSIONS
