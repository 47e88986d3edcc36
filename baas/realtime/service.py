"""What each realtime client message does: authenticate, subscribe (with replay), unsubscribe.

Subscriptions are checked when made exactly as a REST list or get would be (collection, locked
rule, filter, expand, fields), so a bad one is refused at once with the same codes; after that
the hub judges each change for them with the rule engine.
"""

from __future__ import annotations

import time
from typing import Any

from baas.auth.bearer import access_claims, identify_bearer
from baas.auth.identity import ANONYMOUS, Identity
from baas.auth.keys import PREFIX
from baas.auth.sessions import identity_from_claims
from baas.errors import ApiError
from baas.http.responses import dumps
from baas.query import FilterError
from baas.realtime import access, protocol
from baas.realtime.access import Spec
from baas.realtime.channels import Channels
from baas.realtime.connection import Connection, Subscription
from baas.realtime.hub import Hub
from baas.realtime.protocol import CLOSE_TOO_MANY, ProtocolError
from baas.records.shape import read_shape
from baas.rules.engine import RuleError
from baas.schema.ids import record_id


class Realtime:
    """The realtime service of one process: the hub, the channels, and the message handlers."""

    def __init__(self, hub: Hub, channels: Channels) -> None:
        self.hub = hub
        self.channels = channels
        hub.on_tick.append(self.check_tokens)

    async def start(self) -> None:
        await self.hub.start()
        await self.channels.start()

    async def stop(self) -> None:
        await self.hub.stop()
        await self.channels.stop()

    async def handle(self, conn: Connection, message: protocol.Message, ref: str | None) -> None:
        reply: dict[str, Any] | None
        if isinstance(message, protocol.Subscribe):
            await self.subscribe(conn, message, ref)
            return
        if isinstance(message, protocol.Auth):
            reply = self.authenticate(conn, message.token)
        elif isinstance(message, protocol.Unsubscribe):
            reply = self.unsubscribe(conn, message.id)
        elif isinstance(message, protocol.Ping):
            reply = {"type": "pong"}
        elif isinstance(message, protocol.Pong):
            reply = None
        elif isinstance(message, protocol.Join):
            reply = await self.channels.join(conn, message.channel, message.presence)
        elif isinstance(message, protocol.Leave):
            reply = await self.channels.leave(conn, message.channel)
        else:
            assert isinstance(message, protocol.Broadcast)
            await self.channels.broadcast(conn, message)
            reply = None
        if reply is not None:
            if ref is not None:
                reply["ref"] = ref
            conn.send(reply)

    # -- auth -------------------------------------------------------------------------------------

    def authenticate(self, conn: Connection, token: str) -> dict[str, Any] | None:
        identity, expires = self._identify(token)
        current = conn.identity
        if current.kind != "anonymous" and (current.kind, current.id) != (
            identity.kind,
            identity.id,
        ):
            raise ProtocolError(
                "identity_changed",
                "this connection belongs to another identity: reconnect to switch",
            )
        if identity.kind == "user" and current.kind == "anonymous":
            assert identity.id is not None
            if not self.hub.admit_user(conn, identity.id):
                conn.cut(CLOSE_TOO_MANY, "too many connections for this user")
                return None
        conn.identity = identity
        conn.expires_at = expires
        user = identity.id if identity.kind == "user" else None
        return {"type": "auth_ok", "kind": identity.kind, "user": user, "expires_at": expires}

    def _identify(self, token: str) -> tuple[Identity, float | None]:
        ctx = self.hub.ctx
        try:
            if token.startswith(PREFIX):
                return identify_bearer(ctx, token), None
            claims = access_claims(ctx, token)
        except ApiError as exc:
            raise ProtocolError(exc.code, exc.message) from None
        return identity_from_claims(claims), float(claims["exp"])

    def check_tokens(self, _now: float) -> None:
        """Every tick: connections whose token expired, or whose session ended, go anonymous."""
        wall = time.time()
        revoked = self.hub.ctx.revoked
        for conn in list(self.hub.connections):
            identity = conn.identity
            if identity.kind == "anonymous":
                continue
            if conn.expires_at is not None and wall >= conn.expires_at:
                self.expire(conn, "token_expired")
            elif identity.session is not None and identity.session in revoked:
                self.expire(conn, "session_ended")

    def expire(self, conn: Connection, reason: str) -> None:
        """Back to anonymous: subscriptions a visitor could not make end, channels are left."""
        identity = conn.identity
        if identity.kind == "user" and identity.id:
            self.hub.release_user(identity.id)
        conn.identity = ANONYMOUS
        conn.expires_at = None
        conn.send({"type": "auth_expired", "reason": reason})
        schema = self.hub.ctx.schema
        for sub in list(conn.subs.values()):
            c = schema.collection(sub.collection)
            if sub.spec.admin or c is None or c.rules.for_operation(sub.spec.operation) != "":
                self.hub.end(sub, reason)
        self.channels.leave_all(conn, reason)

    # -- subscriptions ----------------------------------------------------------------------------

    async def subscribe(self, conn: Connection, msg: protocol.Subscribe, ref: str | None) -> None:
        await self.hub.catch_up()
        sub = self._subscription(conn, msg)  # (no await from here to `add`)
        if msg.since is not None:
            sub.buffer = []  # live changes wait until the missed ones are sent
        position = self.hub.add(sub)
        reply: dict[str, Any] = {"type": "subscribed", "id": msg.id, "change_id": position}
        if ref is not None:
            reply["ref"] = ref
        conn.send(reply)
        if msg.since is not None:
            await self.hub.replay(sub, msg.since, position)

    def _subscription(self, conn: Connection, msg: protocol.Subscribe) -> Subscription:
        ctx = self.hub.ctx
        settings = ctx.settings

        def refuse(code: str, message: str, **extra: Any) -> ProtocolError:
            return ProtocolError(code, message, sub=msg.id, **extra)

        if msg.id in conn.subs:
            raise refuse("duplicate_subscription", "a subscription with this id exists")
        if len(conn.subs) >= settings.realtime_max_subscriptions:
            raise refuse(
                "too_many_subscriptions",
                f"at most {settings.realtime_max_subscriptions} subscriptions per connection",
            )
        c = ctx.schema.collection(msg.collection)
        if c is None:
            raise refuse("collection_not_found", f"no collection named {msg.collection!r}")
        operation = "view" if msg.record is not None else "list"
        identity = conn.identity
        if not identity.is_admin and c.rules.for_operation(operation) is None:
            raise refuse(
                "forbidden",
                f"only service keys and superusers may {operation} {c.name} records "
                f"(its {operation} rule is locked)",
            )
        record = None
        if msg.record is not None:
            record = record_id(msg.record)
            if record is None:
                raise refuse("invalid_parameter", "record must be a record id", parameter="record")
        try:
            shape = read_shape(c, msg.fields, msg.expand, settings)
            spec = self.hub.intern(Spec(operation, msg.filter, shape.expand, identity.is_admin))
            access.check(ctx, c, spec)
        except FilterError as exc:
            raise refuse("invalid_filter", f"filter: {exc}", position=exc.position) from None
        except RuleError as exc:
            raise refuse("forbidden", str(exc)) from None
        except ApiError as exc:
            raise refuse(exc.code, exc.message, **exc.details) from None
        head = b'{"sub":' + dumps(msg.id) + b","
        return Subscription(conn, msg.id, c.name, record, spec, shape.fields, head)

    def unsubscribe(self, conn: Connection, sub_id: str) -> dict[str, Any]:
        sub = conn.subs.get(sub_id)
        if sub is None:
            raise ProtocolError(
                "subscription_not_found", "no subscription with this id", sub=sub_id
            )
        self.hub.remove(sub)
        return {"type": "unsubscribed", "id": sub_id}

    def forget(self, conn: Connection) -> None:
        """The connection is gone: out of the hub and of its channels."""
        self.hub.forget(conn)
        self.channels.leave_all(conn, None)
