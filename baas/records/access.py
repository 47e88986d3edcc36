"""Who may touch which collection: the lookup, the locked-rule check and per-request arguments."""

from __future__ import annotations

from typing import Any

from baas.auth.identity import Identity
from baas.context import AppContext
from baas.errors import Forbidden, NotFound
from baas.query import QueryLimits
from baas.schema.models import Collection

VERBS = {"list": "list", "view": "view", "create": "create", "update": "update", "delete": "delete"}


def collection(ctx: AppContext, name: str) -> Collection:
    c = ctx.schema.collection(name)
    if c is None:
        raise NotFound(f"no collection named {name!r}", code="collection_not_found")
    return c


def authorize(c: Collection, operation: str, identity: Identity) -> None:
    """Refuse at once when the operation is locked for this caller (no query needed)."""
    if not identity.is_admin and c.rules.for_operation(operation) is None:
        raise Forbidden(
            f"only service keys and superusers may {VERBS[operation]} {c.name} records "
            f"(its {operation} rule is locked)"
        )


def bind_auth(identity: Identity) -> dict[str, Any]:
    """The per-request value of `auth.id` (null for anonymous callers)."""
    return {"auth.id": identity.id if identity.kind == "user" else None}


def query_limits(ctx: AppContext) -> QueryLimits:
    return ctx.query_limits
