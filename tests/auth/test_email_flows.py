"""The email flows over HTTP: sign-up and verification, password reset, email change, rehashing on
sign-in, and what they must not reveal (which addresses have accounts)."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
from argon2 import PasswordHasher

from baas.auth.passwords import HASHER
from baas.auth.users import users_table
from baas.config import Settings
from baas.context import AppContext
from tests.auth.conftest import (
    PASSWORD,
    Account,
    configure,
    last_link,
    mails,
    sign_in,
    sign_up,
    token_of,
)

NEW_PASSWORD = "a brand new passphrase 42"
RACERS = 10


async def _sign_up(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/api/auth/sign-up", json={"email": email, "password": password})


async def _sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/api/auth/sign-in", json={"email": email, "password": password})


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def _templates(client: httpx.AsyncClient, recipient: str) -> list[str]:
    """The templates of the mails to `recipient`, newest first."""
    return [m["template"] for m in await mails(client, recipient)]


async def _stored_hash(ctx: AppContext, email: str) -> str:
    value = await ctx.db.fetchval(
        f"SELECT password_hash FROM {users_table()} WHERE email = $1", email
    )
    assert isinstance(value, str)
    return value


# -- sign-up and verification ------------------------------------------------------------------


async def test_sign_up_mails_a_link_to_this_servers_page(
    anon: httpx.AsyncClient, settings: Settings
) -> None:
    response = await _sign_up(anon, "ann@example.com")
    assert (response.status_code, response.json()) == (202, {"verification_required": True})

    [mail] = await mails(anon, "ann@example.com")
    assert (mail["template"], mail["status"]) == ("verify", "outbox")
    link = await last_link(anon, "ann@example.com", "verify")
    assert link.startswith(f"{settings.base_url}/auth/verify-email?token=")
    assert link in mail["html"]
    assert _error(await _sign_in(anon, "ann@example.com")) == (403, "email_not_verified")

    confirmed = await anon.post("/api/auth/verification/confirm", json={"token": token_of(link)})
    assert (confirmed.status_code, confirmed.json()) == (200, {"verified": True})
    account = await sign_in(anon, "ann@example.com")
    me = await anon.get("/api/auth/me", headers=account.headers)
    assert me.json()["verified"] is True


async def test_links_follow_auth_link_base(anon: httpx.AsyncClient) -> None:
    await configure(anon, auth__link_base="https://app.example.com/links/")
    await _sign_up(anon, "ann@example.com")
    link = await last_link(anon, "ann@example.com", "verify")
    assert link.startswith("https://app.example.com/links/verify-email?token=")
    confirmed = await anon.post("/api/auth/verification/confirm", json={"token": token_of(link)})
    assert confirmed.status_code == 200, confirmed.text


async def test_without_required_verification_sign_up_signs_in(anon: httpx.AsyncClient) -> None:
    await configure(anon, auth__require_verification=False)
    response = await _sign_up(anon, "ann@example.com")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["user"]["email"] == "ann@example.com"
    assert body["user"]["verified"] is False
    me = await anon.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200, me.text
    assert (await _sign_in(anon, "ann@example.com")).status_code == 200
    # The address is still unproven: the mail offers to confirm it.
    assert await _templates(anon, "ann@example.com") == ["verify"]
    taken = await _sign_up(anon, "ann@example.com")
    assert _error(taken) == (409, "email_taken")


async def test_a_new_verification_link_replaces_the_old_one(anon: httpx.AsyncClient) -> None:
    await _sign_up(anon, "ann@example.com")
    first = token_of(await last_link(anon, "ann@example.com", "verify"))
    again = await anon.post("/api/auth/verification", json={"email": "Ann@Example.com"})
    assert (again.status_code, again.json()) == (202, {"status": "accepted"})
    second = token_of(await last_link(anon, "ann@example.com", "verify"))
    assert second != first

    old = await anon.post("/api/auth/verification/confirm", json={"token": first})
    assert _error(old) == (400, "invalid_token")
    new = await anon.post("/api/auth/verification/confirm", json={"token": second})
    assert new.status_code == 200, new.text


async def test_a_verified_account_gets_no_more_verification_mail(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    before = await _templates(anon, alice.email)
    response = await anon.post("/api/auth/verification", json={"email": alice.email})
    assert response.status_code == 202
    assert await _templates(anon, alice.email) == before


async def test_verification_requests_answer_alike_whatever_the_account(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    await _sign_up(anon, "ann@example.com")
    answers = [
        await anon.post("/api/auth/verification", json={"email": email})
        for email in ("nobody@example.com", "ann@example.com", alice.email)
    ]
    assert {(r.status_code, r.text) for r in answers} == {(202, '{"status":"accepted"}')}
    assert await _templates(anon, "nobody@example.com") == []
    assert await _templates(anon, "ann@example.com") == ["verify", "verify"]


async def test_concurrent_sign_ups_with_one_address_make_one_account(
    anon: httpx.AsyncClient, ctx: AppContext
) -> None:
    answers = await asyncio.gather(*(_sign_up(anon, "ann@example.com") for _ in range(RACERS)))
    assert {(r.status_code, r.text) for r in answers} == {(202, '{"verification_required":true}')}
    count = await ctx.db.fetchval(
        f"SELECT count(*) FROM {users_table()} WHERE email = 'ann@example.com'"
    )
    assert count == 1
    templates = await _templates(anon, "ann@example.com")
    assert templates.count("verify") == 1
    assert set(templates) <= {"verify", "already_registered"}


async def test_an_anonymous_user_signs_up_and_keeps_their_id(anon: httpx.AsyncClient) -> None:
    await configure(anon, auth__anonymous=True)
    guest = (await anon.post("/api/auth/anonymous")).json()
    headers = {"Authorization": f"Bearer {guest['access_token']}"}
    response = await anon.post(
        "/api/auth/sign-up",
        json={"email": "ann@example.com", "password": PASSWORD},
        headers=headers,
    )
    assert (response.status_code, response.json()) == (202, {"verification_required": True})
    link = await last_link(anon, "ann@example.com", "verify")
    assert "/auth/confirm-email?token=" in link

    done = await anon.post("/api/auth/email-change/confirm", json={"token": token_of(link)})
    assert done.json() == {"email": "ann@example.com", "verified": True}
    ann = await sign_in(anon, "ann@example.com")
    assert ann.id == guest["user"]["id"]
    me = await anon.get("/api/auth/me", headers=ann.headers)
    assert me.json()["anonymous"] is False


# -- enumeration safety ------------------------------------------------------------------------


async def test_sign_up_with_a_taken_address_answers_like_a_new_one(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    new = await _sign_up(anon, "newcomer@example.com")
    taken = await _sign_up(anon, " ALICE@example.com ", "another good passphrase")
    assert (taken.status_code, taken.json()) == (new.status_code, new.json())

    [mail, *_] = await mails(anon, alice.email)
    assert mail["template"] == "already_registered"
    assert "already has an account" in mail["text"]
    # The owner's password is untouched and the address still theirs.
    await sign_in(anon, alice.email)
    assert _error(await _sign_in(anon, alice.email, "another good passphrase")) == (
        401,
        "invalid_credentials",
    )


async def test_sign_in_answers_alike_for_unknown_email_and_wrong_password(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    await _sign_up(anon, "unverified@example.com")
    unknown = await _sign_in(anon, "nobody@example.com")
    for email in (alice.email, "unverified@example.com"):
        wrong = await _sign_in(anon, email, "not the right passphrase")
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json()["error"]["code"] == unknown.json()["error"]["code"]
        assert wrong.json()["error"]["code"] == "invalid_credentials"
        assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]
        assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")


async def test_reset_requests_answer_alike_for_unknown_and_known_addresses(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    unknown = await anon.post("/api/auth/password-reset", json={"email": "nobody@example.com"})
    known = await anon.post("/api/auth/password-reset", json={"email": alice.email})
    assert (unknown.status_code, unknown.json()) == (known.status_code, known.json())
    assert known.status_code == 202
    assert await mails(anon, "nobody@example.com") == []
    assert (await _templates(anon, alice.email))[0] == "reset"


async def _sign_in_s(client: httpx.AsyncClient, email: str) -> float:
    started = time.perf_counter()
    response = await _sign_in(client, email, "not the right passphrase")
    assert response.status_code == 401, response.text
    return time.perf_counter() - started


async def test_an_unknown_email_costs_the_same_argon2_work(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    await configure(anon, rate__sign_in_ip="off", rate__sign_in_account="off")
    await _sign_in_s(anon, "nobody@example.com")  # warm up the dummy hash
    unknown, known = [], []
    for _ in range(7):  # interleaved: a busy machine slows both alike
        unknown.append(await _sign_in_s(anon, "nobody@example.com"))
        known.append(await _sign_in_s(anon, alice.email))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 1 / 3 < ratio < 3, (unknown, known)


async def test_a_reset_request_takes_as_long_for_an_unknown_email(
    anon: httpx.AsyncClient, alice: Account, ctx: AppContext
) -> None:
    """The token and the mail are made after the answer: its time says nothing."""
    await configure(anon, rate__email_ip="off", rate__email_account="off")

    async def request_s(email: str) -> float:
        started = time.perf_counter()
        response = await anon.post("/api/auth/password-reset", json={"email": email})
        elapsed = time.perf_counter() - started
        assert response.status_code == 202
        await ctx.drain()  # the mail is written before the next measurement
        return elapsed

    unknown, known = [], []
    for _ in range(9):
        unknown.append(await request_s("nobody@example.com"))
        known.append(await request_s(alice.email))
    ratio = statistics.median(known) / statistics.median(unknown)
    assert ratio < 2, (known, unknown)
    assert len([t for t in await _templates(anon, alice.email) if t == "reset"]) == 9


# -- password reset ----------------------------------------------------------------------------


async def _reset_token(client: httpx.AsyncClient, email: str) -> str:
    response = await client.post("/api/auth/password-reset", json={"email": email})
    assert response.status_code == 202, response.text
    return token_of(await last_link(client, email, "reset"))


async def _confirm_reset(
    client: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "password": password}
    )


async def test_reset_sets_the_password_and_ends_every_session(
    anon: httpx.AsyncClient, alice: Account, settings: Settings
) -> None:
    other_device = await sign_in(anon, alice.email)
    token = await _reset_token(anon, alice.email)
    reset_link = await last_link(anon, alice.email, "reset")
    assert reset_link.startswith(f"{settings.base_url}/auth/reset-password?token=")

    done = await _confirm_reset(anon, token)
    assert (done.status_code, done.json()) == (200, {"password_reset": True})

    assert _error(await _sign_in(anon, alice.email)) == (401, "invalid_credentials")
    await sign_in(anon, alice.email, NEW_PASSWORD)
    for session in (alice, other_device):
        me = await anon.get("/api/auth/me", headers=session.headers)
        assert me.status_code == 401, me.text
        refreshed = await anon.post(
            "/api/auth/refresh", json={"refresh_token": session.tokens["refresh_token"]}
        )
        assert refreshed.status_code == 401, refreshed.text
    assert (await _templates(anon, alice.email))[0] == "password_changed"
    assert _error(await _confirm_reset(anon, token, "yet another passphrase")) == (
        400,
        "invalid_token",
    )


async def test_a_weak_password_does_not_spend_the_reset_token(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    token = await _reset_token(anon, alice.email)
    for weak in ("short", "password123", alice.email, "x" * 1025, "nul \x00 in the middle"):
        refused = await _confirm_reset(anon, token, weak)
        assert _error(refused) == (400, "validation_failed"), refused.text
        assert refused.json()["error"]["fields"]["password"]["code"] == "weak_password"
    missing = await anon.post("/api/auth/password-reset/confirm", json={"token": token})
    assert _error(missing) == (400, "invalid_body")

    assert (await _confirm_reset(anon, token)).status_code == 200
    await sign_in(anon, alice.email, NEW_PASSWORD)


async def test_an_expired_reset_token_is_refused(
    anon: httpx.AsyncClient, alice: Account, ctx: AppContext
) -> None:
    token = await _reset_token(anon, alice.email)
    await ctx.db.execute(
        "UPDATE baas.auth_tokens SET expires = now() - interval '1 second' WHERE kind = 'reset'"
    )
    assert _error(await _confirm_reset(anon, token)) == (400, "invalid_token")
    await sign_in(anon, alice.email)  # the old password still works


async def test_bogus_tokens_are_invalid_not_errors(anon: httpx.AsyncClient) -> None:
    for path in (
        "/api/auth/verification/confirm",
        "/api/auth/password-reset/confirm",
        "/api/auth/email-change/confirm",
    ):
        for token in ("x" * 43, "short", None, 12, "é" * 100, "x" * 10_000):
            body: dict[str, Any] = {"token": token, "password": NEW_PASSWORD}
            response = await anon.post(path, json=body)
            assert _error(response) == (400, "invalid_token"), (path, token, response.text)
        not_an_object = await anon.post(path, json=["token"])
        assert _error(not_an_object) == (400, "invalid_body"), (path, not_an_object.text)


async def test_a_reset_proves_the_address_of_an_unverified_account(
    anon: httpx.AsyncClient,
) -> None:
    await _sign_up(anon, "ann@example.com")
    token = await _reset_token(anon, "ann@example.com")
    assert (await _confirm_reset(anon, token)).status_code == 200
    await sign_in(anon, "ann@example.com", NEW_PASSWORD)


async def test_only_the_newest_reset_link_works(anon: httpx.AsyncClient, alice: Account) -> None:
    first = await _reset_token(anon, alice.email)
    second = await _reset_token(anon, alice.email)
    assert _error(await _confirm_reset(anon, first)) == (400, "invalid_token")
    assert (await _confirm_reset(anon, second)).status_code == 200


async def test_changing_the_password_ends_the_other_sessions(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    other_device = await sign_in(anon, alice.email)
    wrong = await anon.post(
        "/api/auth/password",
        json={"current_password": "not the right passphrase", "password": NEW_PASSWORD},
        headers=alice.headers,
    )
    assert _error(wrong) == (403, "wrong_password")
    weak = await anon.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "password": "short"},
        headers=alice.headers,
    )
    assert _error(weak) == (400, "validation_failed")
    await sign_in(anon, alice.email)  # neither changed anything

    changed = await anon.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "password": NEW_PASSWORD},
        headers=alice.headers,
    )
    assert changed.status_code == 204, changed.text
    assert (await anon.get("/api/auth/me", headers=alice.headers)).status_code == 200
    assert (await anon.get("/api/auth/me", headers=other_device.headers)).status_code == 401
    assert (await _templates(anon, alice.email))[0] == "password_changed"
    await sign_in(anon, alice.email, NEW_PASSWORD)


async def test_a_token_only_opens_its_own_kind_of_link(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    tokens = {
        "/api/auth/password-reset/confirm": await _reset_token(anon, alice.email),
        "/api/auth/email-change/confirm": await _email_change_token(anon, alice, "a@new.example"),
    }
    await _sign_up(anon, "ann@example.com")
    tokens["/api/auth/verification/confirm"] = token_of(
        await last_link(anon, "ann@example.com", "verify")
    )
    for path in tokens:
        for other_path, token in tokens.items():
            if other_path != path:
                body = {"token": token, "password": NEW_PASSWORD}
                response = await anon.post(path, json=body)
                assert _error(response) == (400, "invalid_token"), (path, other_path)
    for path, token in tokens.items():  # none was spent by the wrong door
        response = await anon.post(path, json={"token": token, "password": NEW_PASSWORD})
        assert response.status_code == 200, (path, response.text)


# -- single use under concurrency --------------------------------------------------------------


async def _race(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> list[int]:
    """Statuses of RACERS concurrent POSTs; every refusal must be the spent token's."""
    responses = await asyncio.gather(*(client.post(path, json=body) for _ in range(RACERS)))
    for response in responses:
        assert response.status_code == 200 or _error(response) == (400, "invalid_token"), (
            response.text
        )
    return sorted(r.status_code for r in responses)


async def test_concurrent_reset_confirms_succeed_once(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    token = await _reset_token(anon, alice.email)
    body = {"token": token, "password": NEW_PASSWORD}
    statuses = await _race(anon, "/api/auth/password-reset/confirm", body)
    assert statuses == [200] + [400] * (RACERS - 1)
    assert (await _templates(anon, alice.email)).count("password_changed") == 1


async def test_concurrent_verification_confirms_succeed_once(anon: httpx.AsyncClient) -> None:
    await _sign_up(anon, "ann@example.com")
    token = token_of(await last_link(anon, "ann@example.com", "verify"))
    statuses = await _race(anon, "/api/auth/verification/confirm", {"token": token})
    assert statuses == [200] + [400] * (RACERS - 1)


async def test_concurrent_email_change_confirms_succeed_once(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    token = await _email_change_token(anon, alice, "alice@new.example")
    statuses = await _race(anon, "/api/auth/email-change/confirm", {"token": token})
    assert statuses == [200] + [400] * (RACERS - 1)
    assert (await _templates(anon, alice.email)).count("email_changed") == 1


# -- email change ------------------------------------------------------------------------------


async def _request_email_change(
    client: httpx.AsyncClient, account: Account, email: str, password: str | None = PASSWORD
) -> httpx.Response:
    body: dict[str, Any] = {"email": email}
    if password is not None:
        body["password"] = password
    return await client.post("/api/auth/email-change", json=body, headers=account.headers)


async def _email_change_token(client: httpx.AsyncClient, account: Account, email: str) -> str:
    response = await _request_email_change(client, account, email)
    assert (response.status_code, response.json()) == (202, {"status": "accepted"})
    return token_of(await last_link(client, email, "email_change"))


async def test_email_change_moves_the_account_to_the_new_address(
    anon: httpx.AsyncClient, alice: Account, settings: Settings
) -> None:
    response = await _request_email_change(anon, alice, " Alice@New.Example ")
    assert response.status_code == 202, response.text
    link = await last_link(anon, "alice@new.example", "email_change")
    assert link.startswith(f"{settings.base_url}/auth/confirm-email?token=")
    me = await anon.get("/api/auth/me", headers=alice.headers)
    assert me.json()["email"] == alice.email  # nothing changes until the link is opened

    done = await anon.post("/api/auth/email-change/confirm", json={"token": token_of(link)})
    assert (done.status_code, done.json()) == (
        200,
        {"email": "alice@new.example", "verified": True},
    )
    me = await anon.get("/api/auth/me", headers=alice.headers)
    assert (me.json()["email"], me.json()["verified"]) == ("alice@new.example", True)
    [notice, *_] = await mails(anon, alice.email)
    assert notice["template"] == "email_changed"
    assert "alice@new.example" in notice["text"]
    assert _error(await _sign_in(anon, alice.email)) == (401, "invalid_credentials")
    await sign_in(anon, "alice@new.example")


async def test_email_change_needs_the_current_password(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    for password in (None, "not the right passphrase", 42):
        response = await _request_email_change(anon, alice, "alice@new.example", password)  # type: ignore[arg-type]
        assert _error(response) == (403, "wrong_password"), response.text
    same = await _request_email_change(anon, alice, alice.email)
    assert _error(same) == (400, "same_email")
    unsigned = await anon.post("/api/auth/email-change", json={"email": "x@example.com"})
    assert unsigned.status_code == 401
    assert await mails(anon, "alice@new.example") == []


async def test_email_change_to_a_taken_address_loses_nothing(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    bob = await sign_up(anon, "bob@example.com")
    response = await _request_email_change(anon, alice, bob.email)
    assert (response.status_code, response.json()) == (202, {"status": "accepted"})
    # The request does not tell whether the address is taken; the link cannot take it.
    token = token_of(await last_link(anon, bob.email, "email_change"))
    for _ in range(2):
        taken = await anon.post("/api/auth/email-change/confirm", json={"token": token})
        assert _error(taken) == (409, "email_taken"), taken.text

    me = await anon.get("/api/auth/me", headers=alice.headers)
    assert (me.json()["email"], me.json()["verified"]) == (alice.email, True)
    await sign_in(anon, alice.email)
    await sign_in(anon, bob.email)
    assert "email_changed" not in await _templates(anon, alice.email)


async def test_a_verification_link_for_the_old_address_stops_working(
    anon: httpx.AsyncClient,
) -> None:
    await configure(anon, auth__require_verification=False)
    created = (await _sign_up(anon, "ann@example.com")).json()
    ann = Account(created["user"]["id"], "ann@example.com", PASSWORD, created)
    verify = token_of(await last_link(anon, ann.email, "verify"))
    change = await _email_change_token(anon, ann, "ann@new.example")
    assert (await anon.post("/api/auth/email-change/confirm", json={"token": change})).is_success

    stale = await anon.post("/api/auth/verification/confirm", json={"token": verify})
    assert _error(stale) == (400, "invalid_token")


# -- rehashing ---------------------------------------------------------------------------------


async def test_sign_in_rehashes_a_password_stored_with_weaker_parameters(
    anon: httpx.AsyncClient, alice: Account, ctx: AppContext
) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    await ctx.db.execute(
        f"UPDATE {users_table()} SET password_hash = $2 WHERE email = $1", alice.email, weak
    )
    await sign_in(anon, alice.email)

    stored = await _stored_hash(ctx, alice.email)
    assert stored != weak
    assert not HASHER.check_needs_rehash(stored)
    assert "m=19456,t=2,p=1" in stored
    HASHER.verify(stored, PASSWORD)
    await sign_in(anon, alice.email)
    assert await _stored_hash(ctx, alice.email) == stored  # once is enough
