"""The install's secret key and what is built on it: sealing secrets at rest, hashing tokens.

Every install has its own secret key: `BAAS_SECRET_KEY`, or one generated on first start into
`<data_dir>/secret.key` (mode 0600). It never enters the database; the database holds an HMAC of a
constant (`baas.install.key_check`) so a server started with the wrong key refuses to run instead
of failing to decrypt later. Secrets that must be read back (signing keys, TOTP seeds, SMTP
passwords) are sealed with AES-256-GCM under a key derived from it, bound to their purpose.
Tokens and codes are 256-bit random values, so they are stored as plain SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from baas.config import key_problem
from baas.db.pool import Database

KEY_FILE = "secret.key"
_VERSION = b"\x01"


class SecretKeyError(RuntimeError):
    """The secret key is missing, a placeholder, or not the one this database was set up with."""


def load_secret_key(configured: str, data_dir: Path) -> bytes:
    """The configured key, or the data dir's (generated on first use)."""
    if configured:
        problem = key_problem(configured)
        if problem:
            raise SecretKeyError(f"BAAS_SECRET_KEY {problem}")
        return configured.encode()
    path = data_dir / KEY_FILE
    if not path.exists():
        _write_new_key(path)
    key = path.read_text(encoding="ascii").strip()
    problem = key_problem(key)
    if problem:
        raise SecretKeyError(f"{path}: the secret key {problem}")
    return key.encode()


def _write_new_key(path: Path) -> None:
    """Write a fresh key atomically; if another process got there first, keep theirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        key = secrets.token_urlsafe(32)
        while key_problem(key):  # (a random key that looks like a placeholder: ~never)
            key = secrets.token_urlsafe(32)
        os.write(fd, (key + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)  # fails if the file exists: never replace a key in use
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


class SecretBox:
    """Seals and opens secrets with keys derived from the install's secret key."""

    def __init__(self, secret_key: bytes) -> None:
        self._seal_key = AESGCM(_derive(secret_key, b"baas seal v1"))
        self._check = hmac.new(_derive(secret_key, b"baas check v1"), b"baas", "sha256").digest()
        self._mac_key = _derive(secret_key, b"baas mac v1")

    @property
    def key_check(self) -> bytes:
        return self._check

    def seal(self, plaintext: bytes, purpose: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._seal_key.encrypt(nonce, plaintext, purpose.encode())

    def open(self, sealed: bytes, purpose: str) -> bytes:
        if sealed[:1] != _VERSION:
            raise SecretKeyError("sealed value of an unknown version")
        try:
            return self._seal_key.decrypt(sealed[1:13], sealed[13:], purpose.encode())
        except InvalidTag:
            raise SecretKeyError(f"cannot open a sealed {purpose}: wrong secret key?") from None

    def mac(self, value: str) -> str:
        """A keyed digest (rate-limit keys for email addresses: no addresses at rest there)."""
        digest = hmac.new(self._mac_key, value.encode(), "sha256").digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()


def _derive(secret_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret_key)


async def check_install(db: Database, box: SecretBox) -> None:
    """Record the key check on first start; refuse a key the database was not set up with."""
    stored = await db.fetchval(
        "WITH new AS (INSERT INTO baas.install (id, key_check) VALUES (1, $1) "
        "ON CONFLICT (id) DO NOTHING RETURNING key_check) "
        "SELECT key_check FROM new UNION ALL SELECT key_check FROM baas.install WHERE id = 1",
        box.key_check,
    )
    if stored is None or not hmac.compare_digest(bytes(stored), box.key_check):
        raise SecretKeyError(
            "this database was set up with a different secret key: start every instance with "
            "the same BAAS_SECRET_KEY (or the data directory's secret.key it was created with)"
        )


def new_token() -> str:
    """A 256-bit random token, url-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
