"""Who is calling: a typed `Identity` (anonymous, user, superuser or service key).

The HTTP middleware resolves one per request from the bearer token without touching the database;
services decide with it. Service keys and superusers bypass access rules; nobody else does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["anonymous", "user", "superuser", "service"]


@dataclass(frozen=True)
class Identity:
    kind: Kind
    id: str | None = None
    name: str = ""  # key name or email, for logs and history ("applied_by")
    session: str | None = None  # the session an access token belongs to
    fields: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_admin(self) -> bool:
        """Service keys and superusers: they bypass rules and may use the admin API."""
        return self.kind in ("service", "superuser")

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name or self.id or '-'}"


ANONYMOUS = Identity("anonymous")
