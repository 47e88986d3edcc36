"""The request-head limit on a real server, over raw sockets: a head past BAAS_MAX_HEADER_BYTES
is refused while it arrives (431 `headers_too_large`, or 414 `url_too_long` for the URL alone),
in our JSON error shape, at once, while other clients go on being served."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import new_database
from tests.e2e import wire
from tests.e2e.servers import Server, running, tracebacks

pytestmark = pytest.mark.slow

DEFAULT_LIMIT = 16_384
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def database_url_for_module(pg_server_url: str, template_db: str) -> str:
    return new_database(pg_server_url, template_db)


@pytest.fixture(scope="module")
def server(
    database_url_for_module: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env = {"BAAS_DATABASE_URL": database_url_for_module}
    with running(tmp_path_factory.mktemp("limits"), env) as running_server:
        yield running_server


def refused(answer: wire.Answer, status: int, code: str, limit: int = DEFAULT_LIMIT) -> None:
    assert answer.status == status, answer
    assert answer.json() == {
        "error": {"code": code, "message": answer.json()["error"]["message"], "limit": limit}
    }
    assert str(limit) in answer.json()["error"]["message"]
    assert answer.headers["connection"] == "close"
    assert answer.headers["x-content-type-options"] == "nosniff"


def ask(port: int, raw: bytes) -> wire.Answer:
    """Send `raw` on a new connection and read one answer."""
    with wire.Connection(port) as connection:
        connection.send(raw)
        return connection.answer()


def get(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Streamer(threading.Thread):
    """Sends `prefix`, then up to `total` bytes of filler, until told to stop."""

    def __init__(self, port: int, prefix: bytes, total: int = 100 * MiB) -> None:
        super().__init__(daemon=True)
        self.connection = wire.Connection(port)
        self.prefix, self.total = prefix, total
        self.sent = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        filler = b"a" * 65_536
        try:
            self.connection.send(self.prefix)
            while self.sent < self.total and not self.stopped.is_set():
                self.connection.send(filler)
                self.sent += len(filler)
        except OSError:  # the server closed the connection
            pass

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)
        self.connection.sock.close()


def test_a_huge_header_is_refused_at_once_while_others_are_served(server: Server) -> None:
    streamer = Streamer(server.port, b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Huge: ")
    started = time.monotonic()
    streamer.start()
    try:
        answer = streamer.connection.answer(timeout=5)
        answered_in = time.monotonic() - started
        for _ in range(5):  # (the huge header may still be on its way)
            asked = time.monotonic()
            assert wire.request(server.port, "GET", "/api/health").status == 200
            assert time.monotonic() - asked < 1
    finally:
        streamer.stop()
    refused(answer, 431, "headers_too_large")
    assert answered_in < 2


def test_many_headers_over_the_limit(server: Server) -> None:
    headers = [f"X-Header-{i}: {'v' * 90}" for i in range(300)]  # ~30 KB in one read
    refused(ask(server.port, get("/api/health", *headers)), 431, "headers_too_large")


def test_url_and_headers_together_over_the_limit(server: Server) -> None:
    raw = get("/api/health?pad=" + "u" * 10_000, "X-Pad: " + "h" * 10_000)
    refused(ask(server.port, raw), 431, "headers_too_large")


def test_a_head_under_the_limit_is_served(server: Server) -> None:
    raw = get("/api/health?pad=" + "u" * 4_000, "X-Pad: " + "h" * 10_000, "Connection: close")
    assert ask(server.port, raw).status == 200


def test_the_limit_is_the_size_of_the_head_as_sent(server: Server) -> None:
    def head_of(size: int) -> bytes:
        base = get("/api/health", "Connection: close", "X-Pad: ")
        return get("/api/health", "Connection: close", "X-Pad: " + "p" * (size - len(base)))

    assert len(head_of(DEFAULT_LIMIT)) == DEFAULT_LIMIT
    assert ask(server.port, head_of(DEFAULT_LIMIT)).status == 200
    refused(ask(server.port, head_of(DEFAULT_LIMIT + 1)), 431, "headers_too_large")


def test_a_huge_url_is_refused_with_414(server: Server) -> None:
    refused(ask(server.port, get("/api/health?q=" + "x" * 20_000)), 414, "url_too_long")
    streamer = Streamer(server.port, b"GET /api/health?q=")
    streamer.start()
    try:
        refused(streamer.connection.answer(timeout=5), 414, "url_too_long")
    finally:
        streamer.stop()


def test_the_limit_holds_for_every_request_of_a_connection(server: Server) -> None:
    with wire.Connection(server.port) as connection:
        connection.send(get("/api/health"))
        assert connection.answer().status == 200
        connection.send(get("/api/health", "X-Huge: " + "h" * 30_000))
        refused(connection.answer(), 431, "headers_too_large")


def test_pipelined_requests_and_bodies_do_not_count(server: Server) -> None:
    with wire.Connection(server.port) as connection:
        connection.send(get("/api/health") + get("/api/health/ready", "Connection: close"))
        assert connection.answer().status == 200
        assert connection.answer().status == 200
    body = b'{"operations": "' + b"b" * 100_000 + b'"}'
    head = "POST /api/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    raw = f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
    read = ask(server.port, raw)  # read whole, and refused for its content
    assert (read.status, read.json()["error"]["code"]) == (400, "invalid_body")


def test_refusals_are_logged_as_warnings_without_traceback(server: Server) -> None:
    assert "refused a request" in server.output()
    assert tracebacks(server) == 0, server.output()[-3000:]


def test_the_limit_is_a_setting_in_every_worker(
    database_url_for_module: str, tmp_path: Path
) -> None:
    env = {"BAAS_DATABASE_URL": database_url_for_module, "BAAS_MAX_HEADER_BYTES": "4096"}
    with running(tmp_path, env, "--workers", "2") as small:
        for _ in range(4):  # connections land on either worker
            refused(
                ask(small.port, get("/api/health", "X-Pad: " + "h" * 5000)),
                431,
                "headers_too_large",
                4096,
            )
        assert (
            ask(small.port, get("/api/health", "X-Pad: " + "h" * 3000, "Connection: close")).status
            == 200
        )


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /api/health/live?q=\x00\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # control bytes
        b"GET /api/health/live HTTP/1.1\r\nBad Header\r\n\r\n",  # a header without a colon
    ],
    ids=["request-line", "header"],
)
def test_bytes_the_parser_cannot_read_get_our_json_400(server: Server, raw: bytes) -> None:
    answer = ask(server.port, raw)
    assert answer.status == 400, answer
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == "malformed_request"
    assert "HTTP/1.1" in answer.json()["error"]["message"]
    assert answer.headers["connection"] == "close"
    assert ask(server.port, get("/api/health/live")).status == 200  # the server goes on
    assert tracebacks(server) == 0
