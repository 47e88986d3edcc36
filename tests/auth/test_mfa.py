"""The TOTP second factor over HTTP: enrolment, the sign-in challenge (password and OpenID
Connect), single-use codes and recovery codes (also under concurrency), attempts, disabling.

Codes are computed with pyotp for a step relative to now (`code(secret, -1)`: the previous 30 s
step). The server accepts one step either side, and only steps later than the last accepted one,
so a test spends the steps -1, 0, +1 in that order."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pyotp
import pytest

from tests.auth.conftest import ADMIN, PASSWORD, Account, configure, oidc_sign_in
from tests.auth.oidc_provider import OidcProvider


def code(secret: str, step: int = 0) -> str:
    """The code of the time step `step` steps from now."""
    return pyotp.TOTP(secret).at(time.time() + 30 * step)


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def enroll(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/api/auth/mfa/totp", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["secret"])


async def enable(
    client: httpx.AsyncClient, headers: dict[str, str], step: int = -1
) -> tuple[str, list[str]]:
    """Enrol and confirm (spending `step`); the secret and the recovery codes."""
    secret = await enroll(client, headers)
    response = await client.post(
        "/api/auth/mfa/totp/confirm", json={"code": code(secret, step)}, headers=headers
    )
    assert response.status_code == 200, response.text
    return secret, response.json()["recovery_codes"]


async def challenge(client: httpx.AsyncClient, account: Account) -> str:
    """Sign in with the password; the second-factor challenge token."""
    response = await client.post(
        "/api/auth/sign-in", json={"email": account.email, "password": account.password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mfa_required"] is True and "access_token" not in body, body
    return str(body["mfa_token"])


async def verify(client: httpx.AsyncClient, mfa_token: str, **answer: Any) -> httpx.Response:
    return await client.post("/api/auth/mfa/verify", json={"mfa_token": mfa_token, **answer})


async def amr(client: httpx.AsyncClient, tokens: dict[str, Any]) -> list[str]:
    """The authentication methods of the session `tokens` belong to."""
    response = await client.get("/api/auth/sessions", headers=bearer(tokens))
    assert response.status_code == 200, response.text
    (current,) = [s for s in response.json()["items"] if s["current"]]
    return list(current["amr"])


@pytest.fixture
async def no_mfa_limit(anon: httpx.AsyncClient) -> None:
    """Switch the per-account second-factor rate limit off, to see what lies behind it."""
    await configure(anon, rate__mfa="off")


# -- enrolment -------------------------------------------------------------------------------


async def test_enrolment_gives_a_secret_and_confirming_gives_recovery_codes(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    response = await anon.post("/api/auth/mfa/totp", headers=alice.headers)
    assert response.status_code == 200, response.text
    secret, uri = response.json()["secret"], response.json()["uri"]
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
    assert pyotp.parse_uri(uri).name == alice.email
    assert (await anon.get("/api/auth/me", headers=alice.headers)).json()["mfa_enabled"] is False
    wrong = await anon.post(
        "/api/auth/mfa/totp/confirm", json={"code": "000000"}, headers=alice.headers
    )
    assert error(wrong) == (400, "invalid_code")
    confirmed = await anon.post(
        "/api/auth/mfa/totp/confirm", json={"code": code(secret)}, headers=alice.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert confirmed.json()["enabled"] is True
    assert len(codes) == len(set(codes)) == 10
    assert (await anon.get("/api/auth/me", headers=alice.headers)).json()["mfa_enabled"] is True
    again = await anon.post("/api/auth/mfa/totp", headers=alice.headers)
    assert error(again) == (409, "mfa_already_enabled")


async def test_enrolment_needs_a_session(anon: httpx.AsyncClient) -> None:
    for path in ("/api/auth/mfa/totp", "/api/auth/mfa/totp/confirm", "/api/auth/mfa/totp/disable"):
        response = await anon.post(path, json={"code": "123456"})
        assert error(response) == (401, "unauthorized"), path


async def test_confirming_without_enrolment_is_a_409(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    response = await anon.post(
        "/api/auth/mfa/totp/confirm", json={"code": "123456"}, headers=alice.headers
    )
    assert error(response) == (409, "mfa_not_enrolling")


async def test_enrolling_again_before_confirming_replaces_the_secret(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    first = await enroll(anon, alice.headers)
    second = await enroll(anon, alice.headers)
    assert first != second
    stale = await anon.post(
        "/api/auth/mfa/totp/confirm", json={"code": code(first)}, headers=alice.headers
    )
    assert error(stale) == (400, "invalid_code")
    fresh = await anon.post(
        "/api/auth/mfa/totp/confirm", json={"code": code(second)}, headers=alice.headers
    )
    assert fresh.status_code == 200, fresh.text


BAD_CODES: list[Any] = [None, 123456, "12345", "1234567", "abcdef", "", ["123456"], {"a": 1}]


async def test_a_malformed_code_is_an_invalid_code(
    anon: httpx.AsyncClient, alice: Account, no_mfa_limit: None
) -> None:
    await enroll(anon, alice.headers)
    for bad in BAD_CODES:
        response = await anon.post(
            "/api/auth/mfa/totp/confirm", json={"code": bad}, headers=alice.headers
        )
        assert error(response) == (400, "invalid_code"), bad
    assert (await anon.get("/api/auth/me", headers=alice.headers)).json()["mfa_enabled"] is False


# -- the sign-in challenge ---------------------------------------------------------------------


async def test_sign_in_asks_for_the_second_factor_and_a_code_answers_it(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    secret, _ = await enable(anon, alice.headers)
    response = await anon.post(
        "/api/auth/sign-in", json={"email": alice.email, "password": PASSWORD}
    )
    body = response.json()
    assert (response.status_code, body["mfa_required"], body["methods"]) == (
        200,
        True,
        ["totp", "recovery_code"],
    )
    assert "access_token" not in body and "refresh_token" not in body and "user" not in body
    sessions = await anon.get("/api/auth/sessions", headers=alice.headers)
    assert len(sessions.json()["items"]) == 1  # the challenge started no session
    answered = await verify(anon, body["mfa_token"], code=code(secret, 0))
    assert answered.status_code == 200, answered.text
    tokens = answered.json()
    assert tokens["user"]["id"] == alice.id
    assert await amr(anon, tokens) == ["pwd", "totp"]
    spent = await verify(anon, body["mfa_token"], code=code(secret, 1))
    assert error(spent) == (400, "invalid_token")


async def test_a_code_works_once(anon: httpx.AsyncClient, alice: Account) -> None:
    secret, _ = await enable(anon, alice.headers)
    current = code(secret, 0)
    first = await verify(anon, await challenge(anon, alice), code=current)
    assert first.status_code == 200, first.text
    replay = await verify(anon, await challenge(anon, alice), code=current)
    assert error(replay) == (400, "invalid_code")
    earlier = await verify(anon, await challenge(anon, alice), code=code(secret, -1))
    assert error(earlier) == (400, "invalid_code")
    later = await verify(anon, await challenge(anon, alice), code=code(secret, 1))
    assert later.status_code == 200, later.text


async def test_the_code_that_confirmed_enrolment_cannot_sign_in(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    first = code(await enroll(anon, alice.headers))
    confirmed = await anon.post(
        "/api/auth/mfa/totp/confirm", json={"code": first}, headers=alice.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    response = await verify(anon, await challenge(anon, alice), code=first)
    assert error(response) == (400, "invalid_code")


async def test_concurrent_answers_with_one_code_succeed_once(
    anon: httpx.AsyncClient, alice: Account, no_mfa_limit: None
) -> None:
    secret, _ = await enable(anon, alice.headers)
    tokens = [await challenge(anon, alice) for _ in range(6)]
    current = code(secret, 0)
    answers = await asyncio.gather(*(verify(anon, t, code=current) for t in tokens))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 400, 400, 400, 400, 400], [a.text for a in answers]


async def test_wrong_codes_use_up_the_challenge(
    anon: httpx.AsyncClient, alice: Account, no_mfa_limit: None
) -> None:
    secret, _ = await enable(anon, alice.headers)
    mfa_token = await challenge(anon, alice)
    for _ in range(4):
        wrong = await verify(anon, mfa_token, code="000000")
        assert error(wrong) == (400, "invalid_code")
    still = await verify(anon, mfa_token, code=code(secret, 0))  # the fifth attempt may succeed
    assert still.status_code == 200, still.text
    mfa_token = await challenge(anon, alice)
    for _ in range(5):
        assert error(await verify(anon, mfa_token, code="000000")) == (400, "invalid_code")
    dead = await verify(anon, mfa_token, code=code(secret, 1))
    assert error(dead) == (400, "invalid_token")
    # The refusal did not spend the code: a new challenge takes it.
    assert (await verify(anon, await challenge(anon, alice), code=code(secret, 1))).is_success


async def test_wrong_codes_are_rate_limited_per_account(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    await enable(anon, alice.headers)
    statuses = []
    for _ in range(3):
        mfa_token = await challenge(anon, alice)
        for _ in range(2):
            statuses.append((await verify(anon, mfa_token, code="000000")).status_code)
    # "rate.mfa" is 5 per 5 minutes by default; the confirmation counted as one.
    assert statuses == [400, 400, 400, 400, 429, 429]


BAD_CHALLENGES: list[tuple[Any, int, str]] = [
    ([], 400, "invalid_body"),
    ({}, 400, "invalid_token"),
    ({"mfa_token": 5, "code": "123456"}, 400, "invalid_token"),
    ({"mfa_token": "x" * 43, "code": "123456"}, 400, "invalid_token"),
    ({"mfa_token": "x" * 5000, "code": "123456"}, 400, "invalid_token"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_CHALLENGES)
async def test_a_bad_challenge_answer_is_a_4xx(
    module_admin: httpx.AsyncClient, body: Any, status: int, code: str
) -> None:
    """Rows that change nothing share the module's app (a database per row costs more)."""
    response = await module_admin.post("/api/auth/mfa/verify", json=body)
    assert error(response) == (status, code)


async def test_a_challenge_of_a_disabled_account_gives_no_session(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    secret, _ = await enable(anon, alice.headers)
    mfa_token = await challenge(anon, alice)
    disabled = await anon.patch(
        f"/api/admin/users/{alice.id}", json={"disabled": True}, headers=ADMIN
    )
    assert disabled.status_code == 200, disabled.text
    response = await verify(anon, mfa_token, code=code(secret, 0))
    assert error(response) == (403, "account_disabled")


async def test_a_challenge_of_a_deleted_account_gives_no_session(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    secret, _ = await enable(anon, alice.headers)
    mfa_token = await challenge(anon, alice)
    deleted = await anon.delete(f"/api/admin/users/{alice.id}", headers=ADMIN)
    assert deleted.status_code == 204, deleted.text
    response = await verify(anon, mfa_token, code=code(secret, 0))
    assert error(response) == (400, "invalid_token")  # the challenge went with the account


# -- recovery codes ----------------------------------------------------------------------------


async def test_a_recovery_code_works_once(anon: httpx.AsyncClient, alice: Account) -> None:
    _, codes = await enable(anon, alice.headers)
    used = await verify(anon, await challenge(anon, alice), recovery_code=codes[0].upper())
    assert used.status_code == 200, used.text
    assert await amr(anon, used.json()) == ["pwd", "recovery_code"]
    again = await verify(anon, await challenge(anon, alice), recovery_code=codes[0])
    assert error(again) == (400, "invalid_code")
    spaced = codes[1].replace("-", " ")
    assert (await verify(anon, await challenge(anon, alice), recovery_code=spaced)).is_success


async def test_concurrent_answers_with_one_recovery_code_succeed_once(
    anon: httpx.AsyncClient, alice: Account, no_mfa_limit: None
) -> None:
    _, codes = await enable(anon, alice.headers)
    tokens = await asyncio.gather(*(challenge(anon, alice) for _ in range(8)))
    answers = await asyncio.gather(*(verify(anon, t, recovery_code=codes[3]) for t in tokens))
    outcomes = sorted("ok" if a.status_code == 200 else a.json()["error"]["code"] for a in answers)
    assert outcomes == ["invalid_code"] * 7 + ["ok"], [a.text for a in answers]
    assert len({a.json()["session_id"] for a in answers if a.status_code == 200}) == 1


async def test_new_recovery_codes_replace_the_old_ones(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    secret, old = await enable(anon, alice.headers)
    refused = await anon.post("/api/auth/mfa/recovery-codes", json={}, headers=alice.headers)
    assert error(refused) == (400, "invalid_code")
    response = await anon.post(
        "/api/auth/mfa/recovery-codes", json={"code": code(secret, 0)}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    new = response.json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    stale = await verify(anon, await challenge(anon, alice), recovery_code=old[1])
    assert error(stale) == (400, "invalid_code")
    assert (await verify(anon, await challenge(anon, alice), recovery_code=new[0])).is_success


# -- disabling ---------------------------------------------------------------------------------


async def test_disabling_needs_a_valid_code(
    anon: httpx.AsyncClient, alice: Account, no_mfa_limit: None
) -> None:
    secret, codes = await enable(anon, alice.headers)
    for body in ({}, {"code": "000000"}, {"recovery_code": "nope-nope"}):
        refused = await anon.post("/api/auth/mfa/totp/disable", json=body, headers=alice.headers)
        assert error(refused) == (400, "invalid_code"), body
    done = await anon.post(
        "/api/auth/mfa/totp/disable", json={"code": code(secret, 0)}, headers=alice.headers
    )
    assert done.status_code == 204, done.text
    assert (await anon.get("/api/auth/me", headers=alice.headers)).json()["mfa_enabled"] is False
    signed_in = await anon.post(
        "/api/auth/sign-in", json={"email": alice.email, "password": PASSWORD}
    )
    assert "access_token" in signed_in.json(), signed_in.text
    again = await anon.post(
        "/api/auth/mfa/totp/disable", json={"code": code(secret, 1)}, headers=alice.headers
    )
    assert error(again) == (409, "mfa_not_enabled")
    recovery = await anon.post(
        "/api/auth/mfa/recovery-codes", json={"recovery_code": codes[0]}, headers=alice.headers
    )
    assert error(recovery) == (400, "invalid_code")  # the recovery codes went with the factor


async def test_disabling_with_a_recovery_code(anon: httpx.AsyncClient, alice: Account) -> None:
    _, codes = await enable(anon, alice.headers)
    done = await anon.post(
        "/api/auth/mfa/totp/disable", json={"recovery_code": codes[0]}, headers=alice.headers
    )
    assert done.status_code == 204, done.text
    assert (await anon.get("/api/auth/me", headers=alice.headers)).json()["mfa_enabled"] is False


async def test_a_pending_challenge_dies_with_the_factor(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    """A challenge issued before the factor was disabled cannot be answered afterwards."""
    secret, codes = await enable(anon, alice.headers)
    mfa_token = await challenge(anon, alice)
    done = await anon.post(
        "/api/auth/mfa/totp/disable", json={"code": code(secret, 0)}, headers=alice.headers
    )
    assert done.status_code == 204, done.text
    response = await verify(anon, mfa_token, recovery_code=codes[0])
    assert error(response) == (400, "invalid_code")


# -- OpenID Connect sign-in is guarded too -------------------------------------------------------


async def test_the_second_factor_guards_oidc_sign_in(
    anon: httpx.AsyncClient, idp: OidcProvider
) -> None:
    await configure(anon, auth__oidc={"acme": idp.setting()})
    first = await oidc_sign_in(anon, idp.id_token())
    assert first.status_code == 200, first.text
    secret, _ = await enable(anon, bearer(first.json()))
    response = await oidc_sign_in(anon, idp.id_token())
    body = response.json()
    assert (response.status_code, body["mfa_required"]) == (200, True), body
    assert "access_token" not in body
    answered = await verify(anon, body["mfa_token"], code=code(secret, 0))
    assert answered.status_code == 200, answered.text
    assert answered.json()["user"]["id"] == first.json()["user"]["id"]
    assert await amr(anon, answered.json()) == ["oidc", "totp"]


async def test_mfa_token_is_not_an_access_token(anon: httpx.AsyncClient, alice: Account) -> None:
    await enable(anon, alice.headers)
    mfa_token = await challenge(anon, alice)
    response = await anon.get("/api/auth/me", headers={"Authorization": f"Bearer {mfa_token}"})
    assert error(response) == (401, "invalid_token")
