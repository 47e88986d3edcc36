"""Rate limits on sign-in, sign-up and auth mail: per account and per IP, configurable at run
time, shared by every server on one database, and reset when their window ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from baas.context import AppContext
from tests.auth.conftest import ADMIN, PASSWORD, Account, configure, mails, sign_up
from tests.conftest import RunningApp
from tests.e2e.servers import eventually, running

WRONG = "not the password at all"


def ip(address: str) -> dict[str, str]:
    """Headers of a request passed on by the (trusted, local) proxy for `address`."""
    return {"X-Forwarded-For": address}


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = WRONG, address: str = "10.0.0.1"
) -> httpx.Response:
    return await client.post(
        "/api/auth/sign-in", json={"email": email, "password": password}, headers=ip(address)
    )


def assert_limited(response: httpx.Response, window_s: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= window_s
    assert response.json()["error"]["retry_after"] == retry


async def test_sign_in_per_account(anon: httpx.AsyncClient, alice: Account) -> None:
    bob = await sign_up(anon, "bob@example.com")
    # Every attempt counts, a successful one too: alice's sign-in at sign-up was the first.
    await configure(anon, rate__sign_in_account="4/1m", rate__sign_in_ip="off")
    for n in range(3):  # from three addresses: the limit follows the account
        assert (await sign_in(anon, alice.email, address=f"10.0.0.{n}")).status_code == 401
    assert_limited(await sign_in(anon, alice.email, address="10.0.0.9"), 60)
    # Even the right password waits: the attacker cannot tell it from a wrong one.
    assert_limited(await sign_in(anon, alice.email, PASSWORD, address="10.0.0.10"), 60)
    # The address is spelled differently but is the same account.
    assert_limited(await sign_in(anon, " ALICE@example.com ", PASSWORD), 60)
    assert (await sign_in(anon, bob.email, PASSWORD)).status_code == 200


async def test_concurrent_attempts_never_exceed_the_limit(anon: httpx.AsyncClient) -> None:
    await configure(anon, rate__sign_in_account="4/1m", rate__sign_in_ip="off")
    answers = await asyncio.gather(*(sign_in(anon, "target@example.com") for _ in range(12)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [401] * 4 + [429] * 8


async def test_sign_in_per_ip(anon: httpx.AsyncClient, alice: Account) -> None:
    await configure(anon, rate__sign_in_ip="3/1m", rate__sign_in_account="off")
    for n in range(3):  # three accounts, one address
        assert (await sign_in(anon, f"user{n}@example.com", address="10.1.1.1")).status_code == 401
    assert_limited(await sign_in(anon, alice.email, PASSWORD, address="10.1.1.1"), 60)
    assert (await sign_in(anon, alice.email, PASSWORD, address="10.1.1.2")).status_code == 200


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(app: RunningApp) -> None:
    """A client that is not a trusted proxy cannot choose a new address per request."""
    transport = httpx.ASGITransport(app=app.asgi, client=("203.0.113.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as direct:
        await configure(direct, rate__sign_in_ip="2/1m", rate__sign_in_account="off")
        for n in range(2):
            response = await sign_in(direct, f"u{n}@example.com", address=f"10.2.0.{n}")
            assert response.status_code == 401, response.text
        assert_limited(await sign_in(direct, "u9@example.com", address="10.2.0.9"), 60)


async def test_sign_up_per_ip(anon: httpx.AsyncClient) -> None:
    await configure(anon, rate__sign_up_ip="2/1m")

    async def attempt(email: str, address: str) -> httpx.Response:
        body = {"email": email, "password": PASSWORD}
        return await anon.post("/api/auth/sign-up", json=body, headers=ip(address))

    assert (await attempt("a@example.com", "10.3.0.1")).status_code == 202
    assert (await attempt("b@example.com", "10.3.0.1")).status_code == 202
    assert_limited(await attempt("c@example.com", "10.3.0.1"), 60)
    assert (await attempt("d@example.com", "10.3.0.2")).status_code == 202
    listed = await anon.get("/api/admin/users", headers=ADMIN)
    emails = sorted(u["email"] for u in listed.json()["items"])
    assert emails == ["a@example.com", "b@example.com", "d@example.com"]  # no half sign-up
    assert await mails(anon, "c@example.com") == []


@pytest.mark.parametrize("path", ["/api/auth/password-reset", "/api/auth/verification"])
async def test_mail_requests_per_ip(anon: httpx.AsyncClient, path: str) -> None:
    await configure(anon, rate__email_ip="2/1m", rate__email_account="off")
    for n in range(2):
        response = await anon.post(
            path, json={"email": f"x{n}@example.com"}, headers=ip("10.4.0.1")
        )
        assert response.status_code == 202, response.text
    response = await anon.post(path, json={"email": "x9@example.com"}, headers=ip("10.4.0.1"))
    assert_limited(response, 60)
    response = await anon.post(path, json={"email": "x9@example.com"}, headers=ip("10.4.0.2"))
    assert response.status_code == 202, response.text


async def test_mail_requests_per_account_stay_quiet(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    """Past the per-address limit the answer is still 202 (nothing to learn), but no mail."""
    await configure(anon, rate__email_account="2/1m", rate__email_ip="off")
    for n in range(4):
        response = await anon.post(
            "/api/auth/password-reset", json={"email": alice.email}, headers=ip(f"10.5.0.{n}")
        )
        assert response.status_code == 202, response.text
    resets = [m for m in await mails(anon, alice.email) if m["template"] == "reset"]
    assert len(resets) == 2
    # The limit is per address: another one still gets its mail.
    bob = await sign_up(anon, "bob@example.com")
    response = await anon.post("/api/auth/password-reset", json={"email": bob.email})
    assert response.status_code == 202
    assert (await mails(anon, bob.email))[0]["template"] == "reset"


async def test_off_disables_a_limit(anon: httpx.AsyncClient, alice: Account) -> None:
    await configure(anon, rate__sign_in_account="3/1m")  # alice signed in once already
    for _ in range(2):
        assert (await sign_in(anon, alice.email)).status_code == 401
    assert_limited(await sign_in(anon, alice.email), 60)
    await configure(anon, rate__sign_in_account="off", rate__sign_in_ip="off")
    for _ in range(5):
        assert (await sign_in(anon, alice.email)).status_code == 401
    assert (await sign_in(anon, alice.email, PASSWORD)).status_code == 200


async def _clock_moves_on(ctx: AppContext, seconds: float) -> None:
    """Windows start `seconds` earlier: as if that much time had passed (the database's clock
    is the one windows are measured with)."""
    await ctx.db.execute(
        "UPDATE baas.rate_limits SET window_start = window_start - make_interval(secs => $1)",
        seconds,
    )


async def test_the_window_ends(anon: httpx.AsyncClient, ctx: AppContext) -> None:
    await configure(anon, rate__sign_in_account="2/1m")
    for _ in range(2):
        assert (await sign_in(anon, "ghost@example.com")).status_code == 401
    assert_limited(await sign_in(anon, "ghost@example.com"), 60)
    await _clock_moves_on(ctx, 50)
    limited = await sign_in(anon, "ghost@example.com")  # ten seconds of the window left
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) <= 11
    await _clock_moves_on(ctx, 10)
    assert (await sign_in(anon, "ghost@example.com")).status_code == 401  # counted afresh


async def test_bad_rates_are_refused(admin: httpx.AsyncClient) -> None:
    for value in ["0/1m", "5/0s", "5/2d", "5/1w", "five/1m", "5", "-1/1m", " 5/1m", 5, True, []]:
        response = await admin.patch("/api/admin/settings", json={"rate.sign_in_ip": value})
        assert response.status_code == 400, (value, response.text)
        error = response.json()["error"]
        assert error["fields"]["rate.sign_in_ip"]["code"] == "invalid_value", value
    allowed = await admin.patch("/api/admin/settings", json={"rate.sign_in_ip": "86400/1d"})
    assert allowed.status_code == 200, allowed.text


# -- one limit, two server processes ------------------------------------------------------------


@pytest.mark.slow
def test_a_limit_is_shared_by_two_servers(database_url: str, tmp_path: Path) -> None:
    env = {"BAAS_DATABASE_URL": database_url, "BAAS_ACCESS_LOG": "false"}
    with (
        running(tmp_path, env, name="a") as a,
        running(tmp_path, env, name="b") as b,
        a.client() as ca,
        b.client() as cb,
        httpx.Client(base_url=a.url, timeout=10) as anon_a,
        httpx.Client(base_url=b.url, timeout=10) as anon_b,
    ):
        changed = ca.patch("/api/admin/settings", json={"rate.sign_in_account": "3/1m"})
        assert changed.status_code == 200, changed.text

        def b_follows() -> bool:
            items = cb.get("/api/admin/settings").json()["items"]
            return {"name": "rate.sign_in_account", "value": "3/60s"} in [
                {"name": s["name"], "value": s["value"]} for s in items
            ]

        eventually(b_follows)
        body = {"email": "victim@example.com", "password": WRONG}
        answers = [
            (anon_a if n % 2 == 0 else anon_b).post("/api/auth/sign-in", json=body)
            for n in range(5)
        ]
        assert [r.status_code for r in answers] == [401, 401, 401, 429, 429]
        assert answers[3].json()["error"]["code"] == "rate_limited"
        assert 1 <= int(answers[4].headers["Retry-After"]) <= 60


async def test_re_entered_passwords_count_like_sign_ins(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    """A stolen access token does not buy unlimited guesses at the current password."""
    await configure(anon, rate__sign_in_account="2/1m")
    attempts = [
        ("/api/auth/password", {"current_password": WRONG, "password": "new passphrase 99"}),
        ("/api/auth/email-change", {"email": "x@example.com", "password": WRONG}),
    ]
    for path, body in attempts:
        wrong = await anon.post(path, json=body, headers=alice.headers)
        assert wrong.json()["error"]["code"] == "wrong_password", wrong.text
    path, body = attempts[0]
    assert_limited(await anon.post(path, json=body, headers=alice.headers), 60)
    right = {"current_password": PASSWORD, "password": "new passphrase 99"}
    assert_limited(await anon.post("/api/auth/password", json=right, headers=alice.headers), 60)
