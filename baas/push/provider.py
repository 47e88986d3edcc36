"""What a push provider is to the delivery service: `send(device, notification) -> Outcome`.

Each provider translates its vendor's answers and exceptions into an `Outcome` here at the
boundary: sent; the token is dead (disable the device); try again later (maybe at the time the
provider asked for); or failed for good (a payload the provider refuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from baas.push.notification import Notification

Verdict = Literal["sent", "dead", "retry", "failed"]


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str = ""
    retry_after_s: float | None = None
    provider_id: str | None = None


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
