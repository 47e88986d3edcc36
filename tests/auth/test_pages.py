"""The pages email links open (/auth/verify-email, /auth/reset-password, /auth/confirm-email):
GET only shows a form, POST redeems, and every answer is an HTML page that leaks nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.auth.conftest import (
    PASSWORD,
    Account,
    last_link,
    mails,
    sign_in,
    token_of,
)

NEW_PASSWORD = "a brand new passphrase 42"
BOGUS = "x" * 43  # well-formed, never issued


def _path(link: str) -> str:
    return "/" + link.split("/", 3)[3].split("?", 1)[0]


async def _unverified(client: httpx.AsyncClient, email: str = "ann@example.com") -> str:
    """Sign up without confirming; the verification link's token."""
    response = await client.post("/api/auth/sign-up", json={"email": email, "password": PASSWORD})
    assert response.status_code == 202, response.text
    return token_of(await last_link(client, email, "verify"))


async def _reset_token(client: httpx.AsyncClient, email: str) -> str:
    response = await client.post("/api/auth/password-reset", json={"email": email})
    assert response.status_code == 202, response.text
    return token_of(await last_link(client, email, "reset"))


def _is_page(response: httpx.Response, status: int) -> str:
    """Assert an HTML page with the link pages' headers; its text."""
    assert response.status_code == status, response.text
    headers = response.headers
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    csp = headers["content-security-policy"]
    for directive in ("default-src 'none'", "form-action 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert headers["x-content-type-options"] == "nosniff"
    return response.text


async def test_get_shows_a_form_and_spends_nothing(anon: httpx.AsyncClient) -> None:
    token = await _unverified(anon)
    for _ in range(3):  # a mail scanner prefetching the link, then the person
        page = _is_page(await anon.get("/auth/verify-email", params={"token": token}), 200)
        assert '<form method="post">' in page
        assert f'name="token" value="{token}"' in page
        assert "Verify email" in page

    done = await anon.post("/auth/verify-email", data={"token": token})
    assert "Your email address is verified" in _is_page(done, 200)
    assert "<form" not in done.text
    await sign_in(anon, "ann@example.com")


async def test_a_used_link_shows_an_error_page(anon: httpx.AsyncClient) -> None:
    token = await _unverified(anon)
    assert (await anon.post("/auth/verify-email", data={"token": token})).status_code == 200

    again = _is_page(await anon.post("/auth/verify-email", data={"token": token}), 400)
    assert "invalid, expired or already used" in again
    assert 'class="error"' in again
    assert "<form" not in again
    api = await anon.post("/api/auth/verification/confirm", json={"token": token})
    assert api.status_code == 400


@pytest.mark.parametrize(
    "path", ["/auth/verify-email", "/auth/reset-password", "/auth/confirm-email"]
)
async def test_bogus_and_missing_tokens_are_error_pages(anon: httpx.AsyncClient, path: str) -> None:
    missing = _is_page(await anon.get(path), 400)
    assert "This link is incomplete." in missing
    for token in (BOGUS, "short", "é" * 50):
        body = {"token": token, "password": NEW_PASSWORD}
        page = _is_page(await anon.post(path, data=body), 400)
        assert "invalid" in page or "malformed" in page
    empty = _is_page(await anon.post(path, data={}), 400)
    assert 'role="alert"' in empty


async def test_the_token_is_escaped_in_the_page(anon: httpx.AsyncClient) -> None:
    evil = '"><script>alert(1)</script>'
    page = _is_page(await anon.get("/auth/reset-password", params={"token": evil}), 200)
    assert "<script>" not in page
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    posted = _is_page(await anon.post("/auth/reset-password", data={"token": evil}), 400)
    assert "<script>" not in posted


async def test_reset_page_sets_a_new_password(anon: httpx.AsyncClient, alice: Account) -> None:
    token = await _reset_token(anon, alice.email)
    link = await last_link(anon, alice.email, "reset")
    assert _path(link) == "/auth/reset-password"
    form = _is_page(await anon.get(_path(link), params={"token": token}), 200)
    assert 'type="password"' in form
    assert 'minlength="8"' in form

    done = await anon.post(_path(link), data={"token": token, "password": NEW_PASSWORD})
    assert "every device was signed out" in _is_page(done, 200)
    assert (await anon.get("/api/auth/me", headers=alice.headers)).status_code == 401
    await sign_in(anon, alice.email, NEW_PASSWORD)


async def test_reset_page_asks_again_for_a_weak_password(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    token = await _reset_token(anon, alice.email)
    for weak, why in (("short", "at least 8"), ("password123", "most common"), ("", "password")):
        page = _is_page(
            await anon.post("/auth/reset-password", data={"token": token, "password": weak}), 400
        )
        assert why in page, page
        assert f'name="token" value="{token}"' in page  # the form again, same link
        assert 'type="password"' in page

    done = await anon.post("/auth/reset-password", data={"token": token, "password": NEW_PASSWORD})
    assert _is_page(done, 200)
    await sign_in(anon, alice.email, NEW_PASSWORD)


async def test_confirm_email_page_changes_the_address(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    response = await anon.post(
        "/api/auth/email-change",
        json={"email": "alice@new.example", "password": PASSWORD},
        headers=alice.headers,
    )
    assert response.status_code == 202, response.text
    link = await last_link(anon, "alice@new.example", "email_change")
    token = token_of(link)
    assert _path(link) == "/auth/confirm-email"
    page = _is_page(await anon.get(_path(link), params={"token": token}), 200)
    assert "Confirm email" in page

    done = await anon.post(_path(link), data={"token": token})
    assert "Your email address is changed" in _is_page(done, 200)
    me = await anon.get("/api/auth/me", headers=alice.headers)
    assert me.json()["email"] == "alice@new.example"
    assert (await mails(anon, alice.email))[0]["template"] == "email_changed"


async def test_oversized_and_odd_forms_are_refused_cleanly(anon: httpx.AsyncClient) -> None:
    token = await _unverified(anon)
    odd: list[dict[str, object]] = [
        {"data": {f"f{i}": "v" for i in range(10)}},
        {"data": {"token": "x" * 100_000}},
        {"files": {"token": ("token.txt", token.encode())}},
        {"json": {"token": token}},
        {"content": b"\xff\xfe", "headers": {"content-type": "application/x-www-form-urlencoded"}},
    ]
    for request in odd:
        response = await anon.post("/auth/verify-email", **request)  # type: ignore[arg-type]
        assert 400 <= response.status_code < 500, (request.keys(), response.text)
    assert (await anon.post("/auth/verify-email", data={"token": token})).status_code == 200
