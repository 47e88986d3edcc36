"""Passwords: argon2id at OWASP's parameters, checked off the event loop, and a strength policy.

Hashes use argon2id with m=19 MiB, t=2, p=1 (OWASP Password Storage Cheat Sheet); a hash made
with other parameters verifies and is reported as needing a rehash, which sign-in then stores.
Hashing takes tens of milliseconds of CPU, so it runs in a worker thread (argon2 releases the GIL).
Sign-in with an unknown email verifies against a dummy hash, so both take the same time.
"""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MAX_PASSWORD_LENGTH = 1024  # argon2 reads all of it: a megabyte password is a CPU cost
COMMON_PASSWORDS_CHECKED = 30_000

HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1, hash_len=32, salt_len=16)


def hash_password_sync(password: str) -> str:
    return HASHER.hash(password)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)


def _verify(stored: str | None, password: str) -> tuple[bool, bool]:
    try:
        HASHER.verify(stored or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    if stored is None:
        return False, False
    return True, HASHER.check_needs_rehash(stored)


async def verify_password(stored: str | None, password: str) -> tuple[bool, bool]:
    """(matches, needs rehash). `stored=None` (no such account) costs the same and fails."""
    return await asyncio.to_thread(_verify, stored, password)


@functools.cache
def _dummy_hash() -> str:
    return HASHER.hash("baas dummy password for accounts that do not exist")


@functools.cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"][:COMMON_PASSWORDS_CHECKED])


def warm_up() -> None:
    """Load the common-password list and the dummy hash (slow once) before the first request."""
    _common_passwords()
    _dummy_hash()


def password_problem(password: object, min_length: int, email: str | None = None) -> str | None:
    """Why `password` is not acceptable, or None."""
    if not isinstance(password, str):
        return "must be a string"
    if len(password) < min_length:
        return f"must be at least {min_length} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    if "\x00" in password:
        return "must not contain NUL characters"
    lowered = password.lower()
    if lowered in _common_passwords():
        return "is one of the most common passwords: choose another"
    if email and lowered in (email.lower(), email.split("@", 1)[0].lower()):
        return "must not be your email address"
    return None
