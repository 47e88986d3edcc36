"""Frames written straight to the socket are frames the websockets library reads, and the ASGI
path carries the same messages when the server offers no fast path."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from baas.realtime.wire import text_frame
from tests.realtime.conftest import Serve

NOTES: dict[str, Any] = {
    "collections": {"notes": {"fields": {"body": "text"}, "rules": {"list": "", "view": ""}}}
}


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_a_text_frame_parses_back_to_its_payload(size: int) -> None:
    payload = ("é" * size).encode()[:size]  # any bytes: the frame does not look inside
    reader = StreamReader()
    reader.feed_data(text_frame(payload))
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    else:  # pragma: no cover - the frame was incomplete
        raise AssertionError("the frame did not parse from its own bytes")
    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert frame.data == payload


@pytest.mark.parametrize(
    "ws",
    [
        "websockets-sansio",
        pytest.param(  # uvicorn's other implementation is built on websockets' legacy API
            "websockets",
            marks=[
                pytest.mark.filterwarnings("ignore::DeprecationWarning"),
                pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated"),
            ],
        ),
    ],
)
async def test_changes_arrive_on_either_path(serve: Serve, ws: str) -> None:
    live = await serve(ws=ws)
    await live.apply(NOTES)
    client = await live.connect()
    await client.subscribe("n", "notes")
    [conn] = live.realtime.hub.connections
    assert conn.direct is (ws == "websockets-sansio")  # what `baas serve` runs is the fast one
    created = [await live.create("notes", {"body": f"note {n}"}) for n in range(3)]
    got = await client.changes(3)
    assert [c["record"] for c in got] == created
    await client.send({"type": "ping"})  # replies take the same path as changes
    await client.expect("pong")
