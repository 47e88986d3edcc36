"""Runtime settings: what admins change while the server runs (SMTP, OAuth providers, auth
options, rate limits), kept in `baas.settings` and followed by every instance.

Each setting is declared once in `RUNTIME` (name, parser, default, help, secret?); the admin API
and `baas settings` list and change them through this table, so an unknown name or a bad value is
a 400 naming the setting. Secret values (the SMTP password) are sealed at rest and never shown
back, only whether they are set. A change NOTIFYs `baas_settings`; each instance reloads.

Settings that name URLs the server fetches (OpenID Connect issuers and key URLs, FCM token
endpoints) say which (`fetched_urls`); saving resolves each and refuses one the outbound client
would refuse (an internal address, plain HTTP outside the operator's allowed networks), naming the
host, the address and its kind. Parsing alone never touches the network: reloads stay offline.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr
from typing import Any
from urllib.parse import urlsplit

import orjson

from baas.auth.crypto import SecretBox
from baas.db.pool import Database
from baas.errors import ValidationFailed, field_error
from baas.net import OutboundClient, OutboundError

CHANNEL = "baas_settings"
_SEAL_PURPOSE = "setting"


class SettingValueError(ValueError):
    pass


def _int(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SettingValueError(f"must be a whole number from {low} to {high}")
        return value

    return parse


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingValueError("must be true or false")
    return value


def _text(max_length: int = 1000) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
            raise SettingValueError(f"must be text of at most {max_length} characters")
        return value

    return parse


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in options:
            raise SettingValueError("must be one of: " + ", ".join(options))
        return str(value)

    return parse


def _url_or_empty(value: Any) -> str:
    text = _text(2000)(value)
    parts = urlsplit(text)
    # Links are built as <base>/<page>?token=...: a query, fragment or space would break them.
    bad = not (parts.scheme and parts.netloc) or parts.query or parts.fragment
    if text and (bad or not text.isprintable() or " " in text):
        raise SettingValueError(
            "must be a URL without query or fragment, such as https://app.example.com/auth "
            "or myapp://auth"
        )
    return text.rstrip("/")


def _mailbox(value: Any) -> str:
    """One sender address, maybe with a name: it becomes the From header of every mail."""
    text = _text(320)(value)
    if not text.isprintable() or len(getaddresses([text])) != 1 or "@" not in parseaddr(text)[1]:
        raise SettingValueError("must be one address such as Acme <noreply@example.com>")
    return text


_RATE = re.compile(r"(\d{1,6})/(\d{1,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_RATE_WINDOW_S = 86_400  # counters older than this are swept


@dataclass(frozen=True)
class Rate:
    """At most `limit` hits per `window_s` seconds (limit 0: no limit)."""

    limit: int
    window_s: int

    def __str__(self) -> str:
        return f"{self.limit}/{self.window_s}s" if self.limit else "off"


def parse_rate(value: Any) -> Rate:
    if value is None or value == "off" or value == "":
        return Rate(0, 1)
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match[1]) == 0 or int(match[2]) == 0:
        raise SettingValueError("must be 'N/<window>' such as '10/5m' or '100/1h', or 'off'")
    window_s = int(match[2]) * _UNITS[match[3]]
    if window_s > MAX_RATE_WINDOW_S:
        raise SettingValueError("the window can be at most one day ('1d')")
    return Rate(int(match[1]), window_s)


def _providers(value: Any) -> dict[str, dict[str, Any]]:
    """OpenID Connect providers: {name: {client_ids: [...], issuer?: url, jwks_url?: url}}."""
    from baas.auth.oidc_providers import parse_providers  # imports this module

    return parse_providers(value)


def _push_topics(value: Any) -> dict[str, str]:
    from baas.push.topics import parse_topics  # imports this module

    return parse_topics(value)


def _optional_rule(value: Any) -> str | None:
    if value is None:
        return None
    return _text(2000)(value)


def _push_apps(value: Any) -> dict[str, Any]:
    """Push apps and their APNs / FCM credentials (validated; see baas.push.apps)."""
    from baas.push.apps import parse_apps  # imports this module

    return parse_apps(value)


def _oidc_urls(providers: Any) -> list[tuple[str, str]]:
    from baas.auth.oidc_providers import fetched_urls  # imports this module

    return fetched_urls(providers)


def _push_urls(apps: Any) -> list[tuple[str, str]]:
    from baas.push.apps import fetched_urls  # imports this module

    return fetched_urls(apps)


@dataclass(frozen=True)
class RuntimeSetting:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    secret: bool = False
    # (path, URL) of what the server will fetch for a parsed value: checked when saved.
    fetched_urls: Callable[[Any], list[tuple[str, str]]] | None = None


RUNTIME: tuple[RuntimeSetting, ...] = (
    RuntimeSetting("app.name", _text(100), "baas", "The app's name, used in emails."),
    RuntimeSetting(
        "auth.access_token_ttl", _int(60, 86_400), 900, "Access token lifetime (seconds)."
    ),
    RuntimeSetting(
        "auth.refresh_idle_ttl",
        _int(300, 400 * 86_400),
        30 * 86_400,
        "A session unused this long (seconds) ends.",
    ),
    RuntimeSetting(
        "auth.refresh_max_ttl",
        _int(300, 3650 * 86_400),
        365 * 86_400,
        "A session ends this long (seconds) after sign-in, used or not.",
    ),
    RuntimeSetting(
        "auth.refresh_grace_s",
        _int(0, 120),
        10,
        "Seconds a just-rotated refresh token still answers (two racing requests of one app).",
    ),
    RuntimeSetting("auth.password_min_length", _int(8, 128), 8, "Shortest password accepted."),
    RuntimeSetting(
        "auth.require_verification",
        _bool,
        True,
        "Email sign-ups must verify their address before signing in (also keeps sign-up from "
        "revealing which emails have accounts).",
    ),
    RuntimeSetting("auth.anonymous", _bool, False, "Allow anonymous sign-in."),
    RuntimeSetting(
        "auth.link_base",
        _url_or_empty,
        "",
        "Where email links point (an app deep link or web page); empty: this server's pages.",
    ),
    RuntimeSetting("auth.verify_ttl", _int(300, 30 * 86_400), 86_400, "Verify-link lifetime (s)."),
    RuntimeSetting("auth.reset_ttl", _int(300, 86_400), 3600, "Reset-link lifetime (s)."),
    RuntimeSetting(
        "auth.email_change_ttl", _int(300, 30 * 86_400), 86_400, "Email-change-link lifetime (s)."
    ),
    RuntimeSetting("auth.mfa_ttl", _int(60, 3600), 300, "Seconds to answer a sign-in challenge."),
    RuntimeSetting(
        "auth.oidc",
        _providers,
        {},
        "OpenID Connect providers (google, apple, ...).",
        fetched_urls=_oidc_urls,
    ),
    RuntimeSetting("rate.sign_in_ip", parse_rate, Rate(30, 300), "Sign-in attempts per IP."),
    RuntimeSetting("rate.sign_in_account", parse_rate, Rate(10, 300), "Sign-ins per account."),
    RuntimeSetting("rate.sign_up_ip", parse_rate, Rate(30, 3600), "Sign-ups per IP."),
    RuntimeSetting(
        "rate.email_ip", parse_rate, Rate(20, 3600), "Reset/verification requests per IP."
    ),
    RuntimeSetting(
        "rate.email_account", parse_rate, Rate(5, 3600), "Auth emails sent per address."
    ),
    RuntimeSetting("rate.mfa", parse_rate, Rate(5, 300), "Second-factor attempts per account."),
    RuntimeSetting("smtp.host", _text(255), "", "SMTP server; empty keeps mail in the outbox."),
    RuntimeSetting("smtp.port", _int(1, 65535), 587, "SMTP port."),
    RuntimeSetting(
        "smtp.security", _choice("starttls", "tls", "none"), "starttls", "starttls, tls or none."
    ),
    RuntimeSetting("smtp.username", _text(255), "", "SMTP user name."),
    RuntimeSetting("smtp.password", _text(1000), "", "SMTP password.", secret=True),
    RuntimeSetting("smtp.timeout_s", _int(1, 120), 15, "SMTP connect/send timeout (seconds)."),
    RuntimeSetting("mail.from", _mailbox, "noreply@localhost", "Sender address of auth emails."),
    RuntimeSetting(
        "push.apps",
        _push_apps,
        {},
        "Push apps with their APNs key or FCM service account (see the README's Push section).",
        secret=True,
        fetched_urls=_push_urls,
    ),
    RuntimeSetting(
        "push.topics",
        _push_topics,
        {},
        "Push topics users may subscribe to: name (or prefix*) -> rule ('' = anyone signed in).",
    ),
    RuntimeSetting(
        "push.user_send_rule",
        _optional_rule,
        None,
        "Lets users send push to other users whose record passes this rule (null: only admins).",
    ),
)
BY_NAME = {s.name: s for s in RUNTIME}


class RuntimeSettings:
    """The current runtime settings of this process (defaults until loaded)."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = {s.name: s.default for s in RUNTIME}
        self._set: set[str] = set()
        if values:
            self._values.update(values)
            self._set.update(values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def is_set(self, name: str) -> bool:
        return name in self._set

    async def reload(self, db: Database, box: SecretBox) -> None:
        rows = await db.fetch("SELECT name, value, sealed FROM baas.settings")
        values: dict[str, Any] = {s.name: s.default for s in RUNTIME}
        present = set()
        for r in rows:
            setting = BY_NAME.get(r["name"])
            if setting is None:
                continue  # a setting of a newer version: ignored, kept
            raw = (
                orjson.loads(box.open(bytes(r["sealed"]), _SEAL_PURPOSE))
                if r["sealed"] is not None
                else r["value"]
            )
            try:
                values[setting.name] = setting.parse(raw)
                present.add(setting.name)
            except SettingValueError:
                continue  # stored by a version with other rules: the default applies
        self._values, self._set = values, present

    def describe(self) -> list[dict[str, Any]]:
        """Every setting with its value (secrets: only whether set), default and help."""
        out = []
        for s in RUNTIME:
            value = self._values[s.name]
            out.append(
                {
                    "name": s.name,
                    "value": (bool(value) if s.secret else _plain(value)),
                    "default": None if s.secret else _plain(s.default),
                    "set": s.name in self._set,
                    "secret": s.secret,
                    "help": s.help,
                }
            )
        return out


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Rate) else value


def parse_changes(changes: Any) -> dict[str, Any]:
    """Validate {name: value} (null = back to the default); every problem reported at once."""
    if not isinstance(changes, dict) or not changes:
        raise ValidationFailed(
            {"settings": field_error("invalid_body", "send an object of setting name -> value")}
        )
    errors: dict[str, dict[str, str]] = {}
    out: dict[str, Any] = {}
    for name, value in changes.items():
        setting = BY_NAME.get(name)
        if setting is None:
            errors[str(name)[:100]] = field_error("unknown_setting", "no such setting")
            continue
        if value is None:
            out[name] = None
            continue
        try:
            setting.parse(value)
        except SettingValueError as exc:
            errors[name] = field_error("invalid_value", str(exc))
            continue
        out[name] = value
    if errors:
        raise ValidationFailed(errors)
    return out


async def check_fetched_urls(values: Mapping[str, Any], outbound: OutboundClient) -> None:
    """Refuse values naming a URL the server may not fetch (resolved now; see the docstring)."""
    errors: dict[str, dict[str, str]] = {}
    for name, value in values.items():
        setting = BY_NAME[name]
        if value is None or setting.fetched_urls is None:
            continue
        for path, url in setting.fetched_urls(setting.parse(value)):
            try:
                await outbound.check_url(url)
            except OutboundError as exc:
                errors[name] = field_error("invalid_value", f"{path}: {exc}")
                break
    if errors:
        raise ValidationFailed(errors)


async def update(
    db: Database, box: SecretBox, changes: Any, updated_by: str, outbound: OutboundClient
) -> None:
    """Store validated changes and tell every instance."""
    values = parse_changes(changes)
    await check_fetched_urls(values, outbound)
    async with db.transaction() as tx:
        for name, value in values.items():
            if value is None:
                await tx.execute("DELETE FROM baas.settings WHERE name = $1", name)
                continue
            encoded = orjson.dumps(value)
            secret = BY_NAME[name].secret
            await tx.execute(
                "INSERT INTO baas.settings (name, value, sealed, updated, updated_by) "
                "VALUES ($1, $2, $3, now(), $4) ON CONFLICT (name) DO UPDATE SET "
                "value = excluded.value, sealed = excluded.sealed, updated = now(), "
                "updated_by = excluded.updated_by",
                name,
                None if secret else value,
                box.seal(encoded, _SEAL_PURPOSE) if secret else None,
                updated_by,
            )
        await tx.execute("SELECT pg_notify($1, 'changed')", CHANNEL)
