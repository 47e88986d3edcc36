"""Service API keys: created once and shown once, kept only as SHA-256, checked from memory.

A key is `baas_sk_` + 43 url-safe characters (256 random bits). Each process keeps the hashes of
the active keys in a `KeyRing` (reloaded on NOTIFY `baas_keys`), so checking a key costs a hash
and a dict lookup, never a query. `BAAS_SERVICE_KEY` adds one key from the environment.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from baas.auth.identity import Identity
from baas.config import SERVICE_KEY_PREFIX
from baas.db.pool import Database
from baas.errors import InvalidParameter, NotFound

PREFIX = SERVICE_KEY_PREFIX
MAX_NAME_LENGTH = 100
MAX_REMEMBERED = 1000  # valid keys remembered per process (there are only a few in use)
CHANNEL = "baas_keys"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def generate_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """The active service keys of this process."""

    def __init__(self, env_key: str = "") -> None:
        self._env_hash = hash_key(env_key) if env_key else None
        self._keys: dict[bytes, Identity] = {}
        self._seen: dict[str, Identity] = {}  # valid keys as presented: skips hashing again

    def identify(self, key: str) -> Identity | None:
        found = self._seen.get(key)
        if found is not None:
            return found
        digest = hash_key(key)
        found = self._keys.get(digest)
        env = self._env_hash
        if found is None and env is not None and hmac.compare_digest(digest, env):
            found = Identity("service", name="env")
        if found is not None and len(self._seen) < MAX_REMEMBERED:
            self._seen[key] = found
        return found

    async def reload(self, db: Database) -> None:
        rows = await db.fetch("SELECT id, name, hash FROM baas.service_keys WHERE revoked IS NULL")
        self._keys = {
            bytes(r["hash"]): Identity("service", id=r["id"], name=r["name"]) for r in rows
        }
        self._seen = {}  # a revoked key must be hashed (and refused) again


def check_name(name: object) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH or "\x00" in name:
        raise InvalidParameter(
            f"a key name is 1-{MAX_NAME_LENGTH} characters, e.g. 'ci'", code="invalid_body"
        )
    return name


async def create_key(db: Database, name: str) -> tuple[dict[str, Any], str]:
    """Store a new key; return its description and the key itself (shown this once)."""
    check_name(name)
    key = generate_key()
    async with db.transaction() as tx:
        row = await tx.fetchrow(
            "INSERT INTO baas.service_keys (name, prefix, hash) VALUES ($1, $2, $3) "
            "RETURNING id, name, prefix, created",
            name,
            key[: len(PREFIX) + 6],
            hash_key(key),
        )
        await tx.execute("SELECT pg_notify($1, 'created')", CHANNEL)
    assert row is not None
    return dict(row), key


async def list_keys(db: Database) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, name, prefix, created, revoked FROM baas.service_keys ORDER BY created"
    )
    return [dict(r) for r in rows]


async def revoke_key(db: Database, key_id: str) -> None:
    async with db.transaction() as tx:
        done = await tx.fetchval(
            "UPDATE baas.service_keys SET revoked = now() WHERE id = $1 AND revoked IS NULL "
            "RETURNING id",
            key_id,
        )
        if done is None:
            raise NotFound("no active service key with this id", code="key_not_found")
        await tx.execute("SELECT pg_notify($1, 'revoked')", CHANNEL)
