"""The request middleware: request ids, security headers, authentication and the body limit,
on every kind of response (handler results, handler errors, middleware errors, routing errors)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from baas.config import Settings
from tests.conftest import SERVICE_KEY, apply_schema
from tests.records.scenarios import Case, cases, error, run

LIMIT = 2048
SCHEMA = {"collections": {"posts": {"fields": {"title": "text"}}}}
POSTS = "/api/collections/posts/records"
ONE = POSTS + "/0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b"
JSON = {"Content-Type": "application/json"}
ADMIN = {"Authorization": f"Bearer {SERVICE_KEY}"}
COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
}
PAGE_HEADERS = {  # pages (the console to come): the full set for documents
    **COMMON_HEADERS,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
API_HEADERS = {  # JSON answers: never sniffed, framed, rendered or cached
    **COMMON_HEADERS,
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cache-control": "no-store",
}


@pytest.fixture(scope="module")
def module_settings(module_settings: Settings) -> Settings:
    return module_settings.replace(max_body_bytes=LIMIT, public_url="https://api.example.com")


@pytest.fixture(scope="module")
async def anon(module_app) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the module's app that sends no credentials unless a case does."""
    transport = httpx.ASGITransport(app=module_app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        await apply_schema(c, SCHEMA)
        yield c


def auth(value: str) -> dict[str, str]:
    return {"Authorization": value}


def forbidden() -> dict:
    """Rules are locked until declared: anonymous callers are refused with 403."""
    return {"error": {"code": "forbidden"}}


def unauthorized(code: str = "unauthorized") -> dict[str, object]:
    return error(code)


SCENARIOS = [
    Case("health needs no credentials", "GET", "/api/health", status=200, expect={"status": "ok"}),
    Case("anonymous list", "GET", POSTS, status=403, expect=forbidden()),
    Case("anonymous get", "GET", ONE, status=403, expect=forbidden()),
    Case("anonymous create", "POST", POSTS, {"title": "x"}, 403, forbidden()),
    Case("anonymous patch", "PATCH", ONE, {"title": "x"}, 403, forbidden()),
    Case("anonymous put", "PUT", ONE, {"title": "x"}, 403, forbidden()),
    Case("anonymous delete", "DELETE", ONE, status=403, expect=forbidden()),
    Case("anonymous admin API", "GET", "/api/admin/collections", status=401, expect=unauthorized()),
    Case("unknown service key", "GET", POSTS, status=401, expect=unauthorized("invalid_token"), headers=auth("Bearer baas_sk_" + "x" * 40)),
    Case("not a service key", "GET", POSTS, status=401, expect=unauthorized("invalid_token"), headers=auth("Bearer abc.def.ghi")),
    Case("basic auth", "GET", POSTS, status=401, expect=unauthorized("invalid_token"), headers=auth("Basic dXNlcjpwYXNz")),
    Case("bearer without token", "GET", POSTS, status=401, expect=unauthorized("invalid_token"), headers=auth("Bearer")),
    Case("empty authorization", "GET", POSTS, status=401, expect=unauthorized("invalid_token"), headers=auth("")),
    Case("huge token", "GET", POSTS, status=401, expect=unauthorized("invalid_token"), headers=auth("Bearer " + "x" * 5000)),
    Case("a wrong token even where none is needed", "GET", "/api/health", status=401, expect=unauthorized("invalid_token"), headers=auth("Bearer nope")),
    Case("lower-case scheme", "GET", POSTS, status=200, expect={"total": 0}, headers=auth(f"bearer {SERVICE_KEY}")),
    Case("service key", "GET", POSTS, status=200, expect={"items": [], "total": 0}, headers=ADMIN),
    Case("method not allowed on a list", "DELETE", POSTS, status=405, expect=error("method_not_allowed"), headers=ADMIN),
    Case("method not allowed on a record", "POST", ONE, {}, 405, error("method_not_allowed"), ADMIN),
    Case("method not allowed on batch", "GET", "/api/batch", status=405, expect=error("method_not_allowed"), headers=ADMIN),
    Case("unknown api route", "GET", "/api/nope", status=404, expect=error("route_not_found"), headers=ADMIN),
    Case("trailing slash", "GET", POSTS + "/", status=404, expect=error("route_not_found"), headers=ADMIN),
    Case("too deep a path", "GET", ONE + "/more", status=404, expect=error("route_not_found"), headers=ADMIN),
    Case("unknown route outside the api", "GET", "/nope", status=404, expect=error("route_not_found")),
    Case("declared body over the limit", "POST", POSTS, b"x" * (LIMIT + 1), 413, {"error": {"code": "body_too_large", "limit": LIMIT}}, {**ADMIN, **JSON}),
    Case("body at the limit", "POST", POSTS, b'{"title": "' + b"x" * (LIMIT - 13) + b'"}', 201, {"title": "x" * (LIMIT - 13)}, {**ADMIN, **JSON}),
]  # fmt: skip


@cases(SCENARIOS)
async def test_middleware_scenarios(anon, case):
    response = await run(anon, case)
    check_headers(response, case.path)


def check_headers(response: httpx.Response, path: str) -> None:
    expected = API_HEADERS if path.startswith("/api/") else PAGE_HEADERS
    for name, value in expected.items():
        assert response.headers.get_list(name) == [value], name
    assert response.headers["x-request-id"]
    if response.status_code == 401:
        assert response.headers["www-authenticate"] == "Bearer"


async def test_method_not_allowed_says_what_is(anon):
    """RFC 9110 15.5.6: a 405 response MUST carry Allow."""
    response = await anon.delete(POSTS, headers=ADMIN)
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


async def test_a_streamed_body_over_the_limit(anon):
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "'
        for _ in range(LIMIT // 100 + 1):
            yield b"x" * 100
        yield b'"}'

    response = await anon.post(POSTS, content=chunks(), headers={**ADMIN, **JSON})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
    check_headers(response, POSTS)


async def test_a_malformed_content_length_is_refused(anon):
    request = anon.build_request("POST", POSTS, content=b"{}", headers={**ADMIN, **JSON})
    request.headers["content-length"] = "abc"
    response = await anon.send(request)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/api/health", {}),
        ("GET", POSTS, ADMIN),
        ("GET", POSTS, {}),  # refused by the middleware
        ("GET", "/api/nope", ADMIN),
        ("DELETE", POSTS, ADMIN),
        ("POST", POSTS, {**ADMIN, **JSON}),  # malformed (empty) body
    ],
)
async def test_request_ids(anon, method, path, headers):
    sent = await anon.request(method, path, headers={**headers, "X-Request-Id": "abc-123_X.y:z"})
    assert sent.headers["x-request-id"] == "abc-123_X.y:z"
    if sent.status_code >= 400:
        assert sent.json()["error"]["request_id"] == "abc-123_X.y:z"
    first = await anon.request(method, path, headers=headers)
    second = await anon.request(method, path, headers=headers)
    generated = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert generated[0] != generated[1]
    assert all(len(g) == 32 and int(g, 16) >= 0 for g in generated)
    for insane in ("has space", "x" * 65, "semi;colon", "<script>"):
        replaced = await anon.request(method, path, headers={**headers, "X-Request-Id": insane})
        assert replaced.headers["x-request-id"] != insane
        assert len(replaced.headers["x-request-id"]) == 32


async def test_no_strict_transport_security_over_plain_http(client):
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert "strict-transport-security" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_no_body_is_sent_for_204(anon):
    created = await anon.post(POSTS, json={"title": "x"}, headers=ADMIN)
    response = await anon.delete(f"{POSTS}/{created.json()['id']}", headers=ADMIN)
    assert response.status_code == 204
    assert response.content == b""
    check_headers(response, POSTS)
