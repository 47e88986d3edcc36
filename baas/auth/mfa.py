"""TOTP second factor (RFC 6238, via pyotp): enrol, confirm, recovery codes, sign-in challenge.

Enrolment stores a sealed secret, unconfirmed until the first valid code; confirming returns ten
recovery codes, shown once and stored as SHA-256. A sign-in of an account with a confirmed factor
ends in a challenge token instead of a session; answering it with a current code or an unused
recovery code starts the session. A code is accepted once: the last accepted time step is kept
and only a later step passes (one conditional UPDATE), so a code seen over a shoulder or replayed
by two racing requests works at most once; a recovery code is consumed the same way.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

import pyotp

from baas.auth.crypto import SecretBox, token_hash
from baas.db.pool import Executor
from baas.errors import ApiError, Conflict

RECOVERY_CODES = 10
VALID_WINDOW = 1  # steps either side of now (30 s each): phone clocks drift
MAX_CHALLENGE_ATTEMPTS = 5
_SEAL_PURPOSE = "totp secret"


class InvalidCode(ApiError):
    status, code = 400, "invalid_code"


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret)


def matching_step(secret: str, code: Any, now: float | None = None) -> int | None:
    """The time step whose code `code` is (within the window), or None."""
    if not isinstance(code, str):
        return None
    code = code.replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = _totp(secret)
    step = totp.timecode(time.time() if now is None else now)
    found = None
    for candidate in range(step - VALID_WINDOW, step + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            found = candidate  # no early exit: the same work whichever step matches
    return found


async def enroll(
    ex: Executor, box: SecretBox, subject: str, account: str, issuer: str
) -> dict[str, str]:
    """Start (or restart) enrolment; the secret and its otpauth:// URI for a QR code."""
    confirmed = await ex.fetchval(
        "SELECT confirmed IS NOT NULL FROM baas.totp WHERE subject = $1", subject
    )
    if confirmed:
        raise Conflict(
            "a second factor is already enabled: disable it first", code="mfa_already_enabled"
        )
    secret = pyotp.random_base32()
    await ex.execute(
        "INSERT INTO baas.totp (subject, secret) VALUES ($1, $2) ON CONFLICT (subject) DO "
        "UPDATE SET secret = excluded.secret, created = now(), last_step = 0 "
        "WHERE baas.totp.confirmed IS NULL",
        subject,
        box.seal(secret.encode(), _SEAL_PURPOSE),
    )
    uri = _totp(secret).provisioning_uri(name=account, issuer_name=issuer)
    return {"secret": secret, "uri": uri}


async def _secret(ex: Executor, box: SecretBox, subject: str, confirmed: bool) -> str:
    sealed = await ex.fetchval(
        "SELECT secret FROM baas.totp WHERE subject = $1 AND (confirmed IS NOT NULL) = $2",
        subject,
        confirmed,
    )
    if sealed is None:
        if confirmed:
            raise Conflict("no second factor is enabled", code="mfa_not_enabled")
        raise Conflict("start enrolment first (POST /api/auth/mfa/totp)", code="mfa_not_enrolling")
    return box.open(bytes(sealed), _SEAL_PURPOSE).decode()


async def _accept_step(ex: Executor, subject: str, step: int, confirm: bool) -> bool:
    done = await ex.fetchval(
        "UPDATE baas.totp SET last_step = $2, confirmed = CASE WHEN $3 THEN now() "
        "ELSE confirmed END WHERE subject = $1 AND last_step < $2 RETURNING 1",
        subject,
        step,
        confirm,
    )
    return done is not None


async def confirm(ex: Executor, box: SecretBox, subject: str, code: Any) -> list[str]:
    """Confirm enrolment with a first code; the recovery codes (shown this once)."""
    secret = await _secret(ex, box, subject, confirmed=False)
    step = matching_step(secret, code)
    if step is None or not await _accept_step(ex, subject, step, confirm=True):
        raise InvalidCode("the code is not valid: check the authenticator app's clock")
    return await new_recovery_codes(ex, subject)


async def new_recovery_codes(ex: Executor, subject: str) -> list[str]:
    codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
    await ex.execute("DELETE FROM baas.recovery_codes WHERE subject = $1", subject)
    await ex.execute(
        "INSERT INTO baas.recovery_codes (subject, hash) SELECT $1, unnest($2::bytea[])",
        subject,
        [token_hash(_normal(c)) for c in codes],
    )
    return codes


def _recovery_code() -> str:
    raw = secrets.token_hex(6)  # 48 bits: tried at most a few times per challenge
    return f"{raw[:6]}-{raw[6:]}"


def _normal(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "")


async def enabled(ex: Executor, subject: str) -> bool:
    found = await ex.fetchval(
        "SELECT 1 FROM baas.totp WHERE subject = $1 AND confirmed IS NOT NULL", subject
    )
    return found is not None


async def check(
    ex: Executor, box: SecretBox, subject: str, code: Any = None, recovery_code: Any = None
) -> str:
    """Accept a current TOTP code or an unused recovery code (each works once); which one."""
    if isinstance(recovery_code, str) and recovery_code:
        used = await ex.fetchval(
            "UPDATE baas.recovery_codes SET used = now() "
            "WHERE subject = $1 AND hash = $2 AND used IS NULL RETURNING 1",
            subject,
            token_hash(_normal(recovery_code)[:64]),
        )
        if used is None:
            raise InvalidCode("the recovery code is not valid or was already used")
        return "recovery_code"
    secret = await _secret(ex, box, subject, confirmed=True)
    step = matching_step(secret, code)
    if step is None or not await _accept_step(ex, subject, step, confirm=False):
        raise InvalidCode("the code is not valid (or was already used): wait for the next one")
    return "totp"


async def disable(ex: Executor, subject: str) -> None:
    await ex.execute("DELETE FROM baas.totp WHERE subject = $1", subject)
    await ex.execute("DELETE FROM baas.recovery_codes WHERE subject = $1", subject)


async def remaining_recovery_codes(ex: Executor, subject: str) -> int:
    count = await ex.fetchval(
        "SELECT count(*) FROM baas.recovery_codes WHERE subject = $1 AND used IS NULL", subject
    )
    return int(count)
