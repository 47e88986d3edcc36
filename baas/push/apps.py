"""The "push.apps" runtime setting: the apps push is sent for, with their provider credentials.

    {"ios": {"platform": "ios", "bundle_id": "com.acme.chat", "team_id": "ABCDE12345",
             "key_id": "KEY1234567", "key": "-----BEGIN PRIVATE KEY-----...", "sandbox": false},
     "android": {"platform": "android", "service_account": {...the JSON Google gives...}}}
    {"dev": {"provider": "outbox"}}     # development: kept in the outbox, never sent (outbox.py)

The setting is secret (sealed at rest, never shown back). An Android app's `token_uri` is fetched
by the server (its OAuth token): saving checks it like every server-side fetch (`fetched_urls`).
A device names the app it registered for (`app_id`): an app's name here, its iOS bundle id, its
Android package names or its Firebase project id; when only one app of a platform is configured,
every device of that platform uses it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from baas.net import url_problem
from baas.runtime_settings import SettingValueError

APP_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
BUNDLE_ID = re.compile(r"[A-Za-z0-9.-]{1,155}")
APPLE_ID = re.compile(r"[A-Z0-9]{10}")
MAX_APPS = 50
PROVIDERS = {"ios": "apns", "android": "fcm"}  # each platform's own provider
DEV_APPS = {"dev": {"provider": "outbox"}}  # the setting for development (`baas init` sets it)
# Per platform: its provider's name, the platform's name, and what its app ids are.
VENDOR = {"ios": ("APNs", "iOS", "bundle id"), "android": ("FCM", "Android", "package")}
_OUTBOX_KEYS = {"provider", "platform", "bundle_id", "packages"}
_IOS_KEYS = {"platform", "bundle_id", "team_id", "key_id", "key", "sandbox"}
_ANDROID_KEYS = {"platform", "service_account", "packages"}
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, no secret


@dataclass(frozen=True)
class PushApp:
    name: str
    platform: str  # ios | android; "" for an outbox app that serves both
    bundle_id: str = ""  # ios: the apns-topic
    team_id: str = ""
    key_id: str = ""
    key: str = field(default="", repr=False)  # the .p8 key (PEM)
    sandbox: bool = False
    service_account: Mapping[str, Any] = field(default_factory=dict, repr=False)
    packages: tuple[str, ...] = ()
    provider: str = ""  # outbox, or "" for the platform's own (APNs, FCM)

    @property
    def project_id(self) -> str:
        return str(self.service_account.get("project_id", ""))

    @property
    def kind(self) -> str:
        """apns, fcm or outbox."""
        return self.provider or PROVIDERS[self.platform]

    def serves(self, platform: str) -> bool:
        return self.platform in ("", platform)

    @property
    def ids(self) -> frozenset[str]:
        """What a device's `app_id` may be to be sent through this app."""
        return frozenset(
            i for i in (self.name, self.bundle_id, self.project_id, *self.packages) if i
        )

    def answers_to(self, app_id: str) -> bool:
        return app_id in self.ids

    def app_id_for(self, platform: str) -> str:
        """The `app_id` a device of `platform` registered without one is kept with."""
        if platform == "ios":
            return self.bundle_id or self.name
        return (self.packages[0] if self.packages else "") or self.project_id or self.name


@dataclass(frozen=True)
class Routes:
    """Which devices some app delivers to, as data a query can use: every device of the
    platforms in `everyone` (one app serves each), and devices of other platforms whose
    (platform, app_id) is in `pairs`. The same answer as `find_app(...) is not None`."""

    everyone: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]


def routes(apps: Mapping[str, PushApp]) -> Routes:
    everyone, pairs = [], []
    for platform in PROVIDERS:
        mine = serving(apps, platform)
        if len(mine) == 1:
            everyone.append(platform)
        else:
            pairs += sorted({(platform, i) for a in mine for i in a.ids})
    return Routes(tuple(everyone), tuple(pairs))


def no_app(apps: Mapping[str, PushApp], platform: str, app_id: str | None = None) -> str:
    """What is wrong when no app takes a device: "no FCM app is configured for Android devices"
    (none serves the platform), or "... for package com.acme.chat" (none answers to its id)."""
    vendor, name, what = VENDOR.get(platform, (platform, platform, "app id"))
    if app_id is None or not serving(apps, platform):
        return f"no {vendor} app is configured for {name} devices"
    return f"no {vendor} app is configured for {what} {app_id}"


def parse_apps(value: Any) -> dict[str, PushApp]:
    if not isinstance(value, Mapping):
        raise SettingValueError(
            'must be an object of app name -> {"platform": "ios", ...}'
            ' or {"platform": "android", ...}'
        )
    if len(value) > MAX_APPS:
        raise SettingValueError(f"at most {MAX_APPS} apps")
    return {_name(name): _app(name, entry) for name, entry in value.items()}


def serving(apps: Mapping[str, PushApp], platform: str) -> list[PushApp]:
    """The apps that may send to devices of `platform`."""
    return [a for a in apps.values() if a.serves(platform)]


def find_app(apps: Mapping[str, PushApp], platform: str, app_id: str) -> PushApp | None:
    """The app a device of `platform` registered for `app_id` is sent through."""
    mine = serving(apps, platform)
    named = [a for a in mine if a.answers_to(app_id)]
    if named:
        return named[0]
    return mine[0] if len(mine) == 1 else None


def _name(name: Any) -> str:
    if not isinstance(name, str) or not APP_NAME.fullmatch(name):
        raise SettingValueError(f"app name {str(name)[:50]!r}: 1-100 of A-Z a-z 0-9 _ . -")
    return name


def _app(name: str, entry: Any) -> PushApp:
    if isinstance(entry, Mapping) and entry.get("provider") == "outbox":
        return _outbox(name, entry)
    if not isinstance(entry, Mapping) or entry.get("platform") not in ("ios", "android"):
        raise SettingValueError(
            f'{name}: must be an object with platform ios or android (or "provider": "outbox")'
        )
    own = PROVIDERS[entry["platform"]]
    if entry.get("provider", own) != own:
        raise SettingValueError(f"{name}.provider: {own} for {entry['platform']} apps, or outbox")
    allowed = (_IOS_KEYS if entry["platform"] == "ios" else _ANDROID_KEYS) | {"provider"}
    unknown = sorted(str(k)[:50] for k in entry if k not in allowed)
    if unknown:
        raise SettingValueError(f"{name}: unknown keys {unknown}; allowed: {sorted(allowed)}")
    return _ios(name, entry) if entry["platform"] == "ios" else _android(name, entry)


def _outbox(name: str, entry: Mapping[str, Any]) -> PushApp:
    """The development provider: what would be sent is kept in the outbox (no credentials)."""
    unknown = sorted(str(k)[:50] for k in entry if k not in _OUTBOX_KEYS)
    if unknown:
        raise SettingValueError(f"{name}: unknown keys {unknown}; allowed: {sorted(_OUTBOX_KEYS)}")
    platform = entry.get("platform", "")
    if platform not in ("", "ios", "android"):
        raise SettingValueError(f"{name}.platform: ios or android, or leave it out for both")
    bundle, packages = entry.get("bundle_id", ""), entry.get("packages", [])
    if not isinstance(bundle, str) or (bundle and not BUNDLE_ID.fullmatch(bundle)):
        raise SettingValueError(f"{name}.bundle_id: the app's bundle id, e.g. com.acme.chat")
    if not isinstance(packages, list) or not all(
        isinstance(p, str) and BUNDLE_ID.fullmatch(p) for p in packages
    ):
        raise SettingValueError(f"{name}.packages: a list of package names, e.g. com.acme.chat")
    return PushApp(name, platform, bundle_id=bundle, packages=tuple(packages), provider="outbox")


def _ios(name: str, entry: Mapping[str, Any]) -> PushApp:
    bundle, team, key_id, key = (entry.get(k) for k in ("bundle_id", "team_id", "key_id", "key"))
    if not isinstance(bundle, str) or not BUNDLE_ID.fullmatch(bundle):
        raise SettingValueError(f"{name}.bundle_id: the app's bundle id, e.g. com.acme.chat")
    for label, text in (("team_id", team), ("key_id", key_id)):
        if not isinstance(text, str) or not APPLE_ID.fullmatch(text):
            raise SettingValueError(f"{name}.{label}: Apple's 10-character id, e.g. ABCDE12345")
    if not isinstance(key, str) or not isinstance(_private_key(key), ec.EllipticCurvePrivateKey):
        raise SettingValueError(f"{name}.key: the APNs auth key (.p8 file contents, EC P-256)")
    sandbox = entry.get("sandbox", False)
    if not isinstance(sandbox, bool):
        raise SettingValueError(f"{name}.sandbox: true (development builds) or false")
    return PushApp(name, "ios", bundle, team, key_id, key, sandbox)  # type: ignore[arg-type]


def _android(name: str, entry: Mapping[str, Any]) -> PushApp:
    account = entry.get("service_account")
    if not isinstance(account, Mapping) or account.get("type") != "service_account":
        raise SettingValueError(f"{name}.service_account: the service account JSON from Firebase")
    for key in ("project_id", "client_email", "private_key", "token_uri"):
        if not isinstance(account.get(key), str) or not account[key]:
            raise SettingValueError(f"{name}.service_account.{key}: missing")
    if not isinstance(_private_key(account["private_key"]), rsa.RSAPrivateKey):
        raise SettingValueError(f"{name}.service_account.private_key: not an RSA private key")
    problem = url_problem(account["token_uri"])
    if problem:
        raise SettingValueError(f"{name}.service_account.token_uri: {problem}")
    packages = entry.get("packages", [])
    if not isinstance(packages, list) or not all(
        isinstance(p, str) and BUNDLE_ID.fullmatch(p) for p in packages
    ):
        raise SettingValueError(f"{name}.packages: a list of package names, e.g. com.acme.chat")
    return PushApp(name, "android", service_account=dict(account), packages=tuple(packages))


def fetched_urls(apps: Mapping[str, PushApp]) -> list[tuple[str, str]]:
    """(setting path, URL) of the token endpoints these apps make the server fetch (Google's own
    left out)."""
    return [
        (f"{app.name}.service_account.token_uri", uri)
        for app in apps.values()
        if app.platform == "android"
        and not app.provider  # the outbox fetches nothing
        and (uri := str(app.service_account["token_uri"])) != GOOGLE_TOKEN_URI
    ]


def _private_key(pem: str) -> object:
    try:
        return load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return None
