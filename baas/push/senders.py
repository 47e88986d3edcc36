"""Which provider sends to a device: one APNs or FCM client per configured app, built from the
"push.apps" runtime setting and rebuilt when an admin changes it.

FCM sends and token fetches go through one guarded outbound client (`baas.net`, trusting the
push CA file too). APNs does not: aioapns speaks HTTP/2 to one fixed host, Apple's or the
operator's BAAS_APNS_HOST, which no admin or client can change."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from baas.config import Settings
from baas.net import OutboundClient
from baas.push.apns import ApnsProvider
from baas.push.apps import PushApp, find_app
from baas.push.fcm import FcmProvider
from baas.push.outbox import OutboxProvider
from baas.push.provider import Provider
from baas.runtime_settings import RuntimeSettings

log = logging.getLogger("baas.push")


class Senders:
    def __init__(self, settings: Settings, runtime: RuntimeSettings) -> None:
        self.settings = settings
        self.runtime = runtime
        self._apps: Mapping[str, PushApp] = {}
        self._providers: dict[str, Provider] = {}
        self._retired: list[Provider] = []
        self._outbound = OutboundClient.from_settings(settings, ca_file=_ca_file(settings))

    def apps(self) -> Mapping[str, PushApp]:
        apps: Mapping[str, PushApp] = self.runtime["push.apps"]
        if apps is not self._apps:  # reloaded (any setting's change parses every one again)
            if apps != self._apps:  # the apps changed: new clients from now on
                self._retired.extend(self._providers.values())
                self._providers = {}
            self._apps = apps
        return apps

    def provider_for(self, platform: str, app_id: str) -> Provider | None:
        app = find_app(self.apps(), platform, app_id)
        if app is None:
            return None
        provider = self._providers.get(app.name)
        if provider is None:
            provider = self._providers[app.name] = self._build(app)
        return provider

    def _build(self, app: PushApp) -> Provider:
        if app.kind == "outbox":  # the development provider (outbox.py)
            return OutboxProvider(app)
        s = self.settings
        if app.platform == "ios":
            return ApnsProvider(
                app,
                host=s.apns_host,
                ca_file=_ca_file(s),
                timeout_s=s.push_timeout_s,
                connections=max(1, min(s.push_concurrency // 100 + 1, 4)),
            )
        return FcmProvider(
            app,
            url=s.fcm_url,
            outbound=self._outbound,
            timeout_s=s.push_timeout_s,
            threads=max(4, min(s.push_concurrency, 32)),
        )

    async def close(self) -> None:
        for provider in [*self._providers.values(), *self._retired]:
            try:
                await provider.close()
            except Exception:
                log.exception("closing a push provider failed")
        self._providers, self._retired = {}, []
        self._outbound.close()


def _ca_file(settings: Settings) -> Path | None:
    ca = settings.push_ca_file
    return ca if str(ca) not in ("", ".") else None
