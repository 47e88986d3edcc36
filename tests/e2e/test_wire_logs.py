"""The logs of a real server, text and JSON: one access entry per request with its status (500s
included), control characters in a path escaped (no forged lines, no terminal escapes), and one
traceback per unhandled error."""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import new_database
from tests.e2e import wire
from tests.e2e.failing_server import COMMAND
from tests.e2e.servers import Server, access_entries, eventually, running, tracebacks

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
# \r\n, ESC [2J (clear the screen), DEL and the C1 control CSI (U+009B), all percent-encoded
# a text log line starts with its time; a traceback's lines with "Traceback", spaces, or the
# exception's class and a colon
TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d|Traceback|  |\w[\w.]*: ")
HOSTILE = "/api/nope%0D%0AFORGED%201970-01-01T00:00:00.000Z%20INFO%1B%5B2J%7F%C2%9B%5Cx0a"


@dataclass
class Logging:
    server: Server
    format: str  # BAAS_LOG_FORMAT


@pytest.fixture(scope="module", params=["text", "json"])
def logs(
    request: pytest.FixtureRequest,
    pg_server_url: str,
    template_db: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Logging]:
    env = {
        "BAAS_DATABASE_URL": new_database(pg_server_url, template_db),
        "BAAS_LOG_FORMAT": request.param,
        "PYTHONPATH": str(ROOT),
    }
    tmp = tmp_path_factory.mktemp(f"logs-{request.param}")
    with running(tmp, env, command=(sys.executable, *COMMAND)) as server:
        yield Logging(server, request.param)


def fresh_id() -> str:
    return f"logs-{uuid.uuid4().hex[:12]}"


def logged(server: Server, request_id: str) -> str:
    """The one access entry of this request, once it is written."""
    eventually(lambda: access_entries(server, request_id))
    [entry] = access_entries(server, request_id)
    return entry


def test_control_characters_in_a_path_are_escaped(logs: Logging) -> None:
    server = logs.server
    request_id = fresh_id()
    answer = wire.request(server.port, "GET", HOSTILE, {"X-Request-Id": request_id})
    assert answer.status == 404
    entry = logged(server, request_id)
    raw = server.log.read_bytes()
    for forbidden in (b"\r", b"\x1b", b"\x7f", "\u009b".encode()):
        assert forbidden not in raw
    assert not any(line.startswith("FORGED") for line in server.output().splitlines())
    escaped = r"/api/nope\x0d\x0aFORGED 1970-01-01T00:00:00.000Z INFO\x1b[2J\x7f\x9b\\x0a"
    if logs.format == "json":
        assert json.loads(entry)["path"] == escaped
    else:  # one field of the line: spaces are escaped too
        assert entry.split()[4] == escaped.replace(" ", r"\x20")


def test_every_line_is_an_entry_or_part_of_a_traceback(logs: Logging) -> None:
    server = logs.server
    wire.request(server.port, "GET", HOSTILE)
    wire.request(server.port, "GET", "/api/test/fail")
    _settled(server)
    for line in server.output().splitlines():
        if logs.format == "json":
            assert isinstance(json.loads(line), dict), line
        else:
            assert TEXT_LINE.match(line), line


def test_an_unhandled_error_is_answered_logged_once_and_in_the_access_log(
    logs: Logging,
) -> None:
    server = logs.server
    before = tracebacks(server)
    request_id = fresh_id()
    answer = wire.request(server.port, "GET", "/api/test/fail", {"X-Request-Id": request_id})
    assert answer.status == 500
    assert answer.json() == {
        "error": {"code": "internal_error", "message": "internal error", "request_id": request_id}
    }
    assert answer.headers["x-request-id"] == request_id
    assert answer.headers["cache-control"] == "no-store"
    entry = logged(server, request_id)
    assert " 500 " in entry or '"status":500' in entry
    _settled(server)
    log = server.output()
    assert tracebacks(server) == before + 1, log[-4000:]
    assert "Exception in ASGI application" not in log
    assert any("unhandled error" in line and request_id in line for line in log.splitlines())


def test_an_error_in_the_middle_of_an_answer_is_logged_once(logs: Logging) -> None:
    server = logs.server
    before = tracebacks(server)
    request_id = fresh_id()
    with pytest.raises(wire.FramingError):  # the answer is cut off: the client can tell
        wire.request(server.port, "GET", "/api/test/fail-midway", {"X-Request-Id": request_id})
    logged(server, request_id)
    _settled(server)
    assert tracebacks(server) == before + 1, server.output()[-4000:]
    assert "Exception in ASGI application" not in server.output()


def _settled(server: Server) -> None:
    """Wait until what the server logged so far is written: the access entry of a later
    request is flushed after it."""
    later = fresh_id()
    wire.request(server.port, "GET", "/api/health", {"X-Request-Id": later})
    logged(server, later)
