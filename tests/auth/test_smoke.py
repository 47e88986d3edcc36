from __future__ import annotations

import httpx

from tests.auth.conftest import Account


async def test_sign_up_verify_sign_in_me_refresh_sign_out(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    me = await anon.get("/api/auth/me", headers=alice.headers)
    assert me.json()["email"] == "alice@example.com"
    refreshed = await anon.post(
        "/api/auth/refresh", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    out = await anon.post("/api/auth/sign-out", headers=alice.headers)
    assert out.status_code == 204, out.text
    after = await anon.get("/api/auth/me", headers=alice.headers)
    assert after.status_code == 401, after.text
