"""The OpenAPI document against a real server, checked by schemathesis: every check, positive and
negative data, the stateful phase, as a service key, as a signed-in user and anonymously. Any
server error or any answer the document does not describe fails the run.

The schema exercises what the document describes: rules (public, per-user, locked), relations,
a file field, search fields and the users auth collection. Each run is bounded in time (the three
take about three minutes); checks that are false positives for an operation are configured,
each with its reason, in schemathesis.toml beside this file.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SERVICE_KEY, new_database
from tests.e2e.servers import Server, running, tracebacks

pytestmark = pytest.mark.slow

ST = str(Path(sys.executable).parent / "st")
CONFIG = Path(__file__).with_name("schemathesis.toml")
SECONDS_PER_RUN = 55
PASSWORD = "correct horse battery staple 7"
SCHEMA = {
    "collections": {
        "users": {
            "fields": {"nickname": {"type": "text", "max": 40}},
            "rules": {
                "list": "id = auth.id",
                "view": "id = auth.id",
                "update": "id = auth.id",
                "create": "",
            },
        },
        "posts": {
            "fields": {
                "title": {"type": "text", "required": True, "max": 200},
                "slug": {"type": "text", "unique": True, "pattern": "[a-z0-9-]+"},
                "body": "text",
                "views": {"type": "integer", "min": 0, "default": 0},
                "rating": {"type": "number", "min": 0, "max": 5},
                "published": {"type": "bool", "nullable": False, "default": False},
                "tags": {"type": "select", "values": ["news", "tech"], "multiple": True, "max": 2},
                "author": {
                    "type": "relation",
                    "collection": "users",
                    "required": True,
                    "on_delete": "cascade",
                },
                "meta": "json",
                "cover": {"type": "file", "max_size": "1MB", "mime_types": ["text/plain"]},
            },
            "search": ["title", "body"],
            "rules": {
                "list": "published = true OR author = auth.id",
                "view": "published = true OR author = auth.id",
                "create": "auth.id IS NOT NULL AND body.author = auth.id",
                "update": "author = auth.id",
                "delete": "author = auth.id",
            },
        },
        "comments": {
            "fields": {
                "post": {
                    "type": "relation",
                    "collection": "posts",
                    "required": True,
                    "on_delete": "cascade",
                },
                "text": {"type": "text", "required": True, "max": 500},
                "readers": {"type": "relation", "collection": "users", "multiple": True},
            },
            "rules": {"list": "", "view": "", "create": "auth.id IS NOT NULL"},
        },
        "notes": {"fields": {"text": "text", "day": "date", "at": "datetime"}},
    }
}


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env = {"BAAS_DATABASE_URL": new_database(pg_server_url, template_db)}
    with running(tmp_path_factory.mktemp("schemathesis"), env) as running_server:
        with running_server.client() as admin:
            applied = admin.post("/api/admin/schema/apply", json={"document": SCHEMA})
            assert applied.status_code == 200, applied.text
        yield running_server


@pytest.fixture(scope="module")
def user_token(server: Server) -> str:
    """Signed in before any run: fuzzing sign-in soon rate-limits this address."""
    return _user_token(server)


def _user_token(server: Server) -> str:
    """An access token of a verified user with a password (created through the admin API)."""
    with server.client() as admin:
        created = admin.post(
            "/api/admin/users",
            json={"email": "ann@example.com", "password": PASSWORD, "verified": True},
        )
        assert created.status_code == 201, created.text
    signed_in = httpx.post(
        f"{server.url}/api/auth/sign-in",
        json={"email": "ann@example.com", "password": PASSWORD},
        timeout=10,
    )
    assert signed_in.status_code == 200, signed_in.text
    return str(signed_in.json()["access_token"])


def _schemathesis(server: Server, *args: str) -> None:
    """One bounded schemathesis run over the live document; fails with its report."""
    command = [
        ST,
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.url}/api/openapi.json",
        "--checks",
        "all",
        # Undeclared methods must answer 405 with Allow (tests/http/test_middleware.py checks
        # it on every kind of route). schemathesis sends them with the longest URL a list's
        # parameters allow: each parameter has its own bound, yet together they pass
        # BAAS_MAX_HEADER_BYTES, and the wire layer refuses that request line (414) while it
        # arrives, before any method is read. This version can narrow that check neither per
        # operation nor per phase, so it is the one check left out.
        "--exclude-checks",
        "unsupported_method",
        "--mode",
        "all",  # positive and negative data
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-time",
        str(SECONDS_PER_RUN),
        "--workers",
        "2",
        "--no-color",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS_PER_RUN * 3)
    if done.returncode != 0:
        pytest.fail(f"schemathesis found problems:\n{done.stdout}{done.stderr}")
    assert tracebacks(server) == 0, server.output()[-10_000:]


def test_the_document_holds_anonymously(server: Server, user_token: str) -> None:
    _schemathesis(server)


def test_the_document_holds_for_a_signed_in_user(server: Server, user_token: str) -> None:
    # Operations that end the caller's own session (or change its password) would leave the
    # rest of the run anonymous: they are checked anonymously and with the service key.
    _schemathesis(
        server,
        "-H",
        f"Authorization: Bearer {user_token}",
        "--exclude-path-regex",
        r"^/api/auth/(sign-out|sessions|password$)",
    )


def test_the_document_holds_for_a_service_key(server: Server) -> None:
    # Applying a schema replaces the collections the document was read for (the next document
    # describes the new ones): its own tests cover it.
    _schemathesis(
        server,
        "-H",
        f"Authorization: Bearer {SERVICE_KEY}",
        "--exclude-path",
        "/api/admin/schema/apply",
    )
