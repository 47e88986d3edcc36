"""Auth answers to bodies that miss or mistype a value: a 400 whose field code and message say
what was sent and what to send instead (never a type error for a missing value, never a 401 for
a body that holds no credentials at all)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.auth.conftest import PASSWORD
from tests.records.scenarios import assert_error_shape


@dataclass(frozen=True)
class Answer:
    name: str
    path: str
    body: Any
    field: str
    code: str
    says: tuple[str, ...]  # parts of the field's message


ANSWERS = [
    Answer(
        "sign-up without a password",
        "/api/auth/sign-up",
        {"email": "new@example.com"},
        "password",
        "required",
        ("password is required", "'password'", "at least 8 characters"),
    ),
    Answer(
        "sign-up with a numeric password",
        "/api/auth/sign-up",
        {"email": "new@example.com", "password": 12345678},
        "password",
        "invalid_type",
        ("must be a string of at least 8 characters", "not a number"),
    ),
    Answer(
        "sign-in with a numeric email",
        "/api/auth/sign-in",
        {"email": 123, "password": PASSWORD},
        "email",
        "invalid_type",
        ("must be a string", "@example.com"),
    ),
    Answer(
        "sign-in without an email",
        "/api/auth/sign-in",
        {"password": PASSWORD},
        "email",
        "required",
        ("email address is required",),
    ),
    Answer(
        "refresh with an empty object",
        "/api/auth/refresh",
        {},
        "refresh_token",
        "required",
        ("refresh token is missing", "refresh_token"),
    ),
    Answer(
        "refresh with a number",
        "/api/auth/refresh",
        {"refresh_token": 42},
        "refresh_token",
        "invalid_type",
        ("must be a string",),
    ),
]


@pytest.mark.parametrize("row", ANSWERS, ids=[a.name for a in ANSWERS])
async def test_a_missing_or_mistyped_value_is_named(anon: httpx.AsyncClient, row: Answer) -> None:
    response = await anon.post(row.path, json=row.body)
    assert response.status_code == 400, response.text
    assert_error_shape(response)
    error = response.json()["error"]
    assert error["code"] == "validation_failed", error
    assert error["fields"][row.field]["code"] == row.code, error
    for part in row.says:
        assert part in error["fields"][row.field]["message"], (part, error)


async def test_a_refresh_token_that_is_no_session_is_still_401(anon: httpx.AsyncClient) -> None:
    response = await anon.post("/api/auth/refresh", json={"refresh_token": "x" * 40})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_refresh_token"
