"""Tokens, passwords and hashes never reach the logs or an error body: a real server at debug
level with its access log on, driven through every flow that handles a secret."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pyotp

from tests.conftest import SERVICE_KEY
from tests.e2e.servers import running

PASSWORD = "a secret passphrase 4815"
NEW_PASSWORD = "another secret phrase 1623"
_LINK_TOKEN = re.compile(r"token=([A-Za-z0-9_\-]+)")


def _link_token(client: httpx.Client, email: str, template: str) -> str:
    items = client.get("/api/admin/mail", params={"recipient": email}).json()["items"]
    mail = next(m for m in items if m["template"] == template)
    return _LINK_TOKEN.findall(mail["text"])[0]  # type: ignore[no-any-return]


def test_no_secret_is_logged_or_echoed(database_url: str, tmp_path: Path) -> None:
    env = {
        "BAAS_DATABASE_URL": database_url,
        "BAAS_LOG_LEVEL": "debug",
        "BAAS_ACCESS_LOG": "true",
        "BAAS_LOG_FORMAT": "json",
    }
    secrets: list[str] = [PASSWORD, NEW_PASSWORD, SERVICE_KEY]
    bodies: list[str] = []
    with running(tmp_path, env) as server, server.client() as admin:
        anon = httpx.Client(base_url=server.url, timeout=10)

        def post(path: str, body: Any, **kw: Any) -> httpx.Response:
            response = anon.post(path, json=body, **kw)
            bodies.append(response.text)
            return response

        post("/api/auth/sign-up", {"email": "ann@example.com", "password": PASSWORD})
        verify = _link_token(admin, "ann@example.com", "verify")
        secrets.append(verify)
        assert anon.get(f"/auth/verify-email?token={verify}").status_code == 200
        assert anon.post("/auth/verify-email", data={"token": verify}).status_code == 200
        tokens = post("/api/auth/sign-in", {"email": "ann@example.com", "password": PASSWORD})
        tokens = tokens.json()
        secrets += [tokens["access_token"], tokens["refresh_token"]]
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

        # Failures that carry a secret in the request: none may come back in the answer.
        post("/api/auth/sign-in", {"email": "ann@example.com", "password": PASSWORD + "x"})
        post("/api/auth/refresh", {"refresh_token": tokens["refresh_token"] + "x"})
        post("/api/auth/password-reset/confirm", {"token": verify, "password": NEW_PASSWORD})
        post("/api/auth/verification/confirm", {"token": verify})
        tampered = {"Authorization": f"Bearer {tokens['access_token']}x"}
        bodies.append(anon.get("/api/auth/me", headers=tampered).text)

        rotated = post("/api/auth/refresh", {"refresh_token": tokens["refresh_token"]}).json()
        secrets += [rotated["access_token"], rotated["refresh_token"]]

        enrolled = post("/api/auth/mfa/totp", {}, headers=bearer).json()
        secrets.append(enrolled["secret"])
        codes = post(
            "/api/auth/mfa/totp/confirm",
            {"code": pyotp.TOTP(enrolled["secret"]).now()},
            headers=bearer,
        ).json()["recovery_codes"]
        secrets += codes

        post("/api/auth/password-reset", {"email": "ann@example.com"})
        reset = _link_token(admin, "ann@example.com", "reset")
        secrets.append(reset)
        post("/api/auth/password-reset/confirm", {"token": reset, "password": NEW_PASSWORD})

        challenge = post(
            "/api/auth/sign-in", {"email": "ann@example.com", "password": NEW_PASSWORD}
        )
        secrets.append(challenge.json()["mfa_token"])
        post(
            "/api/auth/mfa/verify",
            {"mfa_token": challenge.json()["mfa_token"], "recovery_code": codes[0]},
        )
        anon.close()
        assert server.stop() == 0  # a clean stop flushes the access log
    log = server.output()
    assert "/api/auth/sign-in" in log  # the access log did run
    errors = [body for body in bodies if '"error"' in body]
    assert len(errors) >= 5
    for secret in secrets:
        assert secret not in log, secret[:6]
        assert not any(secret in body for body in errors), secret[:6]
    assert "$argon2" not in log
    assert "token=" not in log  # link tokens travel in query strings: never logged
