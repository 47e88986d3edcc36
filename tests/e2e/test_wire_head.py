"""HEAD on a real server, read off the socket: wherever GET answers, HEAD answers the same status
and headers (Content-Length included, that of GET's body) and no body."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import SERVICE_KEY, new_database
from tests.e2e import wire
from tests.e2e.servers import Server, running

pytestmark = pytest.mark.slow

SCHEMA = {
    "collections": {
        "posts": {"fields": {"title": "text"}, "rules": {"list": "", "view": ""}},
        "drafts": {"fields": {"title": "text"}},  # locked
    }
}
ADMIN = {"Authorization": f"Bearer {SERVICE_KEY}"}
ID = {"X-Request-Id": "head-and-get"}  # the same id in both answers: bodies of equal length
UNKNOWN_ID = "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b"
VARYING = {"date", "x-request-id"}


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env = {"BAAS_DATABASE_URL": new_database(pg_server_url, template_db)}
    with running(tmp_path_factory.mktemp("head"), env) as running_server:
        with running_server.client() as client:
            applied = client.post("/api/admin/schema/apply", json={"document": SCHEMA})
            assert applied.status_code == 200, applied.text
            created = client.post("/api/collections/posts/records", json={"title": "hello"})
            assert created.status_code == 201
        yield running_server


@pytest.fixture(scope="module")
def post_id(server: Server) -> str:
    with server.client() as client:
        listed = client.get("/api/collections/posts/records").json()
    return str(listed["items"][0]["id"])


TARGETS = [
    ("/api/health", {}, 200),
    ("/api/health/ready", {}, 200),
    ("/api/openapi.json", {}, 200),
    ("/api/auth/jwks.json", {}, 200),
    ("/api/auth/methods", {}, 200),
    ("/api/collections/posts/records", {}, 200),
    ("/api/collections/posts/records?per_page=1&sort=-created", ADMIN, 200),
    ("/api/collections/posts/records/{post}", {}, 200),
    ("/api/admin/collections", ADMIN, 200),
    ("/auth/verify-email", {}, None),  # an HTML page (its status is the page's business)
    ("/api/collections/posts/records?per_page=abc", {}, 400),
    ("/api/admin/collections", {}, 401),
    ("/api/collections/drafts/records", {}, 403),
    ("/api/collections/posts/records/" + UNKNOWN_ID, {}, 404),
    ("/api/collections/nope/records", ADMIN, 404),
    ("/api/nope", {}, 404),
]


@pytest.mark.parametrize(("target", "headers", "status"), TARGETS)
def test_head_answers_as_get_without_a_body(
    server: Server, post_id: str, target: str, headers: dict[str, str], status: int | None
) -> None:
    target = target.format(post=post_id)
    got = wire.request(server.port, "GET", target, {**headers, **ID})
    described = wire.request(server.port, "HEAD", target, {**headers, **ID})
    if status is not None:
        assert got.status == status, got.body
    assert described.status == got.status
    assert described.body == b""  # (and no byte after the head: wire.parse checks)
    assert described.headers["content-length"] == str(len(got.body))
    assert _stable(described.headers) == _stable(got.headers)


def test_head_is_allowed_where_get_is_and_only_there(server: Server) -> None:
    refused = wire.request(server.port, "DELETE", "/api/health")
    assert refused.status == 405
    allowed = {m.strip() for m in refused.headers["allow"].split(",")}
    assert allowed == {"GET", "HEAD"}
    assert wire.request(server.port, "HEAD", "/api/health").status == 200

    no_get = wire.request(server.port, "HEAD", "/api/batch", ADMIN)
    assert no_get.status == 405
    assert no_get.headers["allow"] == "POST"
    assert int(no_get.headers["content-length"]) > 0


def test_no_head_request_failed(server: Server) -> None:
    """After the HEADs above (module order), the server logged no error for any of them."""
    log = server.output()
    assert "Traceback" not in log and "KeyError" not in log, log[-3000:]


def _stable(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in VARYING}
