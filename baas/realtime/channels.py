"""Broadcast channels and presence, across every instance through PostgreSQL.

A channel belongs to a record: `rooms/<id>` may be joined by whoever may view that record (its
view rule, judged by the rule engine at join). Members are rows of `baas.presence`, tagged with
the instance that holds the connection; joins, leaves and broadcasts are NOTIFYs every instance
relays to its own members. Each instance refreshes its row in `baas.instances`; the members of
an instance that stopped refreshing (it died) are removed by the others, with `left` sent.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from typing import Any

import orjson

from baas.context import AppContext
from baas.loops import Loop
from baas.realtime import protocol
from baas.realtime.connection import Connection
from baas.realtime.protocol import ProtocolError
from baas.records.visibility import visible_to
from baas.schema.ids import record_id

log = logging.getLogger("baas.realtime")
PRESENCE = "baas_presence"
BROADCAST = "baas_broadcast"


class Channels:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.instance = str(uuid.uuid4())
        self._members: dict[str, dict[str, Connection]] = defaultdict(dict)  # channel -> member
        interval = max(1.0, ctx.settings.realtime_presence_timeout_s / 3)
        self.beats = Loop("presence", self._heartbeat, every_s=interval, log=log)

    async def start(self) -> None:
        await self._heartbeat()
        self.beats.start()

    async def stop(self) -> None:
        await self.beats.stop()
        rows = await self.ctx.db.fetch(
            "WITH gone AS (DELETE FROM baas.presence WHERE instance = $1 RETURNING channel, "
            "member), me AS (DELETE FROM baas.instances WHERE id = $1) SELECT * FROM gone",
            self.instance,
        )
        await self._announce_left(rows)

    # -- client messages --------------------------------------------------------------------------

    async def join(self, conn: Connection, channel: str, presence: Any) -> dict[str, Any]:
        settings = self.ctx.settings
        if channel in conn.channels:
            raise ProtocolError("already_joined", f"already a member of {channel}")
        if len(conn.channels) >= settings.realtime_max_channels:
            raise ProtocolError(
                "too_many_channels", f"at most {settings.realtime_max_channels} channels"
            )
        await self._check_access(conn, channel)
        member = str(uuid.uuid4())
        user = conn.identity.id if conn.identity.kind == "user" else None
        conn.channels[channel] = member
        self._members[channel][member] = conn
        joined = {"member": member, "user": user, "presence": presence}
        await self.ctx.db.execute(
            "WITH me AS (INSERT INTO baas.presence (member, instance, channel, user_id, meta) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING 1) SELECT pg_notify($6, $7) FROM me",
            member,
            self.instance,
            channel,
            user,
            presence,
            PRESENCE,
            _json({"channel": channel, "joined": [joined]}),
        )
        rows = await self.ctx.db.fetch(
            "SELECT member, user_id, meta FROM baas.presence WHERE channel = $1 "
            "ORDER BY joined, member",
            channel,
        )
        members = [_member(r) for r in rows]
        return {"type": "joined", "channel": channel, "me": member, "members": members}

    async def _check_access(self, conn: Connection, channel: str) -> None:
        missing = ProtocolError(
            "channel_not_found", "a channel is <collection>/<record id>, of a record you may view"
        )
        name, _, raw_id = channel.partition("/")
        c = self.ctx.schema.collection(name)
        rid = record_id(raw_id)
        if c is None or rid is None:
            raise missing
        if conn.identity.is_admin:
            return
        user = conn.identity.id if conn.identity.kind == "user" else None
        if not (await visible_to(self.ctx, c.name, rid, [user]))[0]:
            raise missing

    async def leave(self, conn: Connection, channel: str) -> dict[str, Any]:
        member = conn.channels.get(channel)
        if member is None:
            raise ProtocolError("not_joined", f"not a member of {channel}")
        await self._remove(conn, channel, member)
        return {"type": "left", "channel": channel}

    async def broadcast(self, conn: Connection, msg: protocol.Broadcast) -> None:
        member = conn.channels.get(msg.channel)
        if member is None:
            raise ProtocolError("not_joined", f"join {msg.channel} before broadcasting to it")
        user = conn.identity.id if conn.identity.kind == "user" else None
        body = {
            "channel": msg.channel,
            "event": msg.event,
            "payload": msg.payload,
            "from": {"member": member, "user": user},
        }
        await self.ctx.db.execute("SELECT pg_notify($1, $2)", BROADCAST, _json(body))

    def leave_all(self, conn: Connection, reason: str | None) -> None:
        """Leave every channel (the connection closed, or its token expired)."""
        for channel, member in list(conn.channels.items()):
            conn.channels.pop(channel, None)
            if reason is not None:
                conn.send({"type": "left", "channel": channel, "reason": reason})
            self.ctx.spawn(self._remove(conn, channel, member), "baas-presence-leave")

    async def _remove(self, conn: Connection, channel: str, member: str) -> None:
        conn.channels.pop(channel, None)
        local = self._members.get(channel)
        if local is not None:
            local.pop(member, None)
            if not local:
                del self._members[channel]
        await self.ctx.db.execute(
            "WITH gone AS (DELETE FROM baas.presence WHERE member = $1 RETURNING 1) "
            "SELECT pg_notify($2, $3) FROM gone",
            member,
            PRESENCE,
            _json({"channel": channel, "left": [{"member": member}]}),
        )

    # -- relaying what any instance published -----------------------------------------------------

    async def on_presence(self, payload: str) -> None:
        body = orjson.loads(payload)
        joined = body.get("joined") or [{}]
        message = {"type": "presence", "joined": [], "left": [], **body}
        self._relay(body["channel"], message, skip=joined[0].get("member"))  # not to the joiner

    async def on_broadcast(self, payload: str) -> None:
        body = orjson.loads(payload)
        sender = body["from"]["member"]
        self._relay(body["channel"], {"type": "broadcast", **body}, skip=sender)

    def _relay(self, channel: str, message: dict[str, Any], skip: str | None = None) -> None:
        for member, conn in list(self._members.get(channel, {}).items()):
            if member != skip:
                conn.send(message)

    # -- instances --------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Say this instance lives; drop the members of instances that stopped saying so."""
        rows = await self.ctx.db.fetch(
            "WITH me AS (INSERT INTO baas.instances (id) VALUES ($1) ON CONFLICT (id) DO UPDATE "
            "SET seen = now()), dead AS (DELETE FROM baas.instances WHERE id <> $1 AND seen < "
            "now() - make_interval(secs => $2) RETURNING id) DELETE FROM baas.presence p "
            "USING dead WHERE p.instance = dead.id RETURNING p.channel, p.member",
            self.instance,
            float(self.ctx.settings.realtime_presence_timeout_s),
        )
        await self._announce_left(rows)

    async def _announce_left(self, rows: list[Any]) -> None:
        by_channel: dict[str, list[dict[str, str]]] = defaultdict(list)
        for r in rows:
            by_channel[r["channel"]].append({"member": str(r["member"])})
        for channel, left in by_channel.items():
            await self.ctx.db.execute(
                "SELECT pg_notify($1, $2)", PRESENCE, _json({"channel": channel, "left": left})
            )


def _member(row: Any) -> dict[str, Any]:
    return {"member": str(row["member"]), "user": row["user_id"], "presence": row["meta"]}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
