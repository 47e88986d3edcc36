"""What a push provider is to the delivery service: `send(device, notification) -> Outcome`.

Each provider translates its vendor's answers and exceptions into an `Outcome` here at the
boundary: sent; the token is dead (disable the device); try again later (maybe at the time the
provider asked for); or failed for good (a payload the provider refuses). The development outbox
"sends" by handing back what it would have sent (`kept`), which delivery records with the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from baas.push.notification import Notification

Verdict = Literal["sent", "dead", "retry", "failed"]


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str = ""
    retry_after_s: float | None = None
    provider_id: str | None = None
    kept: Mapping[str, Any] | None = None  # an outbox entry, recorded instead of a real send


SENT = Outcome("sent")


@dataclass(frozen=True)
class Device:
    id: str
    platform: str
    token: str
    app_id: str
    locale: str | None


class Provider(Protocol):
    async def send(self, device: Device, note: Notification) -> Outcome: ...

    async def close(self) -> None: ...
