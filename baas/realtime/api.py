"""`/api/realtime`: the WebSocket endpoint (glue between the socket and the realtime service).

Starlette's HTTP middleware does not run for WebSockets, so this endpoint does its own
accounting: the per-address connection limit, the message rate, the message size (uvicorn's
`ws_max_size`, set from the same setting, closes with 1009).
"""

from __future__ import annotations

import logging

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from baas.errors import ApiError
from baas.http.request import client
from baas.realtime import protocol
from baas.realtime.connection import Connection
from baas.realtime.protocol import CLOSE_RATE, CLOSE_TOO_BIG, CLOSE_TOO_MANY, ProtocolError
from baas.realtime.service import Realtime

log = logging.getLogger("baas.realtime")


async def realtime(websocket: WebSocket) -> None:
    service: Realtime = websocket.scope["state"]["realtime"]
    settings = service.hub.ctx.settings
    await websocket.accept()
    conn = Connection(
        websocket, client(websocket).ip, settings, service.forget, service.hub.flusher
    )
    if not service.hub.admit(conn):
        conn.cut(CLOSE_TOO_MANY, "too many connections from this address")
    try:
        while conn.closed is None:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if not conn.heard():
                conn.cut(CLOSE_RATE, "too many messages")
                break
            text = message.get("text")
            if text is None:
                conn.send(protocol.invalid("frames are UTF-8 text holding JSON").render())
                continue
            limit = settings.realtime_max_message_bytes  # (uvicorn's ws_max_size may differ)
            if len(text) * 4 > limit and len(text.encode()) > limit:
                conn.cut(CLOSE_TOO_BIG, "message too big")
                break
            await _handle(service, conn, text)
    finally:
        await conn.finish()


async def _handle(service: Realtime, conn: Connection, text: str) -> None:
    ref = None
    try:
        message, ref = protocol.parse(text)
        await service.handle(conn, message, ref)
    except ProtocolError as exc:
        if exc.ref is None:
            exc.ref = ref
        conn.send(exc.render())
    except ApiError as exc:  # the database is down or busy, ...
        error = ProtocolError(exc.code, exc.message)
        error.ref = ref
        conn.send(error.render())
    except Exception:
        log.exception("realtime message failed")
        error = ProtocolError("internal_error", "internal error (details are in the server log)")
        error.ref = ref
        conn.send(error.render())


routes = [WebSocketRoute("/api/realtime", realtime)]
