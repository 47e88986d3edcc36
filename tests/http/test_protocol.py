"""The request-head limit of the server protocol, driven read by read: the verdict on a head is
the same however its bytes are split into reads, and bytes of other requests or bodies never
count. (The same limit over real sockets: tests/e2e/test_wire_limits.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from baas.http.protocol import HeadLimitedProtocol

LIMIT = 2048


class Transport(asyncio.Transport):
    """Collects what the protocol writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = self.eof = False

    def write(self, data: Any) -> None:
        self.written += data

    def write_eof(self) -> None:
        self.eof = True

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8090)}.get(
            name, default
        )


async def app(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


def connection() -> tuple[HeadLimitedProtocol, Transport]:
    config = Config(app, h11_max_incomplete_event_size=LIMIT, log_config=None)
    protocol = HeadLimitedProtocol(config, ServerState(), {})
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def statuses(reads: list[bytes]) -> list[int]:
    """The statuses a connection answers after these reads."""
    protocol, transport = connection()
    for data in reads:
        protocol.data_received(data)
        for _ in range(20):  # let the request tasks run
            await asyncio.sleep(0)
    protocol.connection_lost(None)
    answers = bytes(transport.written).split(b"HTTP/1.1 ")[1:]
    return [int(answer[:3]) for answer in answers]


def head(size: int, target: str = "/x") -> bytes:
    """A GET of exactly `size` bytes of head."""
    base = f"GET {target} HTTP/1.1\r\nHost: h\r\nX-Pad: \r\n\r\n"
    return f"GET {target} HTTP/1.1\r\nHost: h\r\nX-Pad: {'p' * (size - len(base))}\r\n\r\n".encode()


def splits(raw: bytes) -> list[list[bytes]]:
    points = [1, 10, 100, LIMIT // 2, LIMIT - 1, LIMIT, LIMIT + 1, len(raw) - 1]
    return [[raw]] + [[raw[:k], raw[k:]] for k in points if 0 < k < len(raw)]


@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT])
async def test_a_head_at_the_limit_is_served_however_it_is_split(size: int) -> None:
    for reads in splits(head(size)):
        assert await statuses(reads) == [200], [len(r) for r in reads]


async def test_a_head_one_byte_over_is_refused_however_it_is_split() -> None:
    for reads in splits(head(LIMIT + 1)):
        assert await statuses(reads) == [431], [len(r) for r in reads]


async def test_a_head_in_many_small_reads() -> None:
    raw = head(LIMIT + 1)
    assert await statuses([raw[i : i + 7] for i in range(0, len(raw), 7)]) == [431]
    raw = head(LIMIT)
    assert await statuses([raw[i : i + 7] for i in range(0, len(raw), 7)]) == [200]


async def test_a_url_over_the_limit_is_414() -> None:
    raw = head(LIMIT + 500, "/x?q=" + "u" * (LIMIT + 1))
    for reads in splits(raw):
        assert await statuses(reads) == [414], [len(r) for r in reads]


async def test_the_refusal_is_our_json_and_the_connection_closes_later() -> None:
    protocol, transport = connection()
    protocol.data_received(head(LIMIT + 1))
    answer = bytes(transport.written)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large"
    body = orjson.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "headers_too_large"
    assert body["error"]["limit"] == LIMIT
    assert transport.eof and not transport.closed  # the client reads the answer, then we close
    protocol.data_received(b"more of the same header" * 1000)  # dropped
    assert bytes(transport.written) == answer
    protocol.connection_lost(None)


async def test_requests_before_a_head_do_not_count() -> None:
    body = b"b" * (LIMIT * 3)
    post = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    at_limit = head(LIMIT)
    # a body's tail and the next head's start in one read, then the rest of that head
    for k in (1, 100, LIMIT // 2, LIMIT - 1):
        raw = post + at_limit
        cut = len(post) + k
        assert await statuses([raw[: len(post) - 10], raw[len(post) - 10 : cut], raw[cut:]]) == [
            200,
            200,
        ]
    # keep-alive: a small request, then a head over the limit
    assert await statuses([head(100), head(LIMIT + 1)]) == [200, 431]
    # pipelined: three heads at the limit in one read
    assert await statuses([at_limit * 3]) == [200, 200, 200]
