"""Push devices and topic subscriptions: register (re-registering a token updates it), list,
unregister; subscribe a device or a whole user to a topic.

A device is registered only for an app `push.apps` configures (409 push_not_configured
otherwise), so what is registered can be sent to; `app_id` may be left out when one app serves
the device's platform, and the device is then kept with that app's bundle id or package.

A device belongs to the signed-in user who registered it, or to an anonymous install (the
install id it registered with, which it must show again to manage it). A token re-registered by
another owner moves to them and leaves its old topics. Each owner keeps at most
`MAX_DEVICES_PER_OWNER` devices: registering one more forgets the least recently updated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from baas.auth.identity import Identity
from baas.context import AppContext
from baas.errors import Conflict, Forbidden, NotFound, ValidationFailed, field_error
from baas.push import access
from baas.push.apps import VENDOR, PushApp, find_app, no_app, serving
from baas.push.notification import valid_topic
from baas.schema.ids import new_record_id, record_id

MAX_DEVICES_PER_OWNER = 50
MAX_TOPICS_PER_SUBSCRIBER = 200
APNS_TOKEN = re.compile(r"(?:[0-9a-fA-F]{2}){32,100}")
FCM_TOKEN = re.compile(r"[A-Za-z0-9_:\-]{20,4096}")
APP_ID = re.compile(r"[A-Za-z0-9_.\-]{1,155}")
LOCALE = re.compile(r"[A-Za-z]{2,8}(?:[_-][A-Za-z0-9]{1,8}){0,2}")
INSTALL_ID = re.compile(r"[A-Za-z0-9_\-]{16,100}")
_COLUMNS = (
    "id, user_id, install_id, platform, right(token, 8) AS token_end, app_id, locale, name,"
    " enabled, disabled_reason, created, updated"
)


@dataclass(frozen=True)
class Owner:
    user_id: str | None
    install_id: str | None


_INSTALL_ID_SHAPE = "16-100 of A-Z a-z 0-9 _ -"


def owner(caller: Identity, body_user: Any, install_id: Any) -> Owner:
    """Whose devices the caller acts on: their own; an admin may name a user. A `user_id`
    that is not an id is refused whoever sends it (never silently ignored)."""
    valid_install = isinstance(install_id, str) and INSTALL_ID.fullmatch(install_id)
    if install_id is not None and not valid_install:
        raise ValidationFailed({"install_id": field_error("invalid", _INSTALL_ID_SHAPE)})
    if body_user is not None:
        uid = record_id(body_user) if isinstance(body_user, str) else None
        if uid is None:
            raise ValidationFailed({"user_id": field_error("invalid", "a user id")})
        if caller.is_admin:
            return Owner(uid, None)
    if caller.kind == "user" and caller.id:
        return Owner(caller.id, None)
    if valid_install:
        return Owner(None, install_id)
    raise ValidationFailed(
        {
            "install_id": field_error(
                "required", f"sign in, or send the install's own id ({_INSTALL_ID_SHAPE})"
            )
        }
    )


_DEVICE_KEYS = ("platform", "token", "app_id", "locale", "name", "install_id", "user_id")


def _parse_device(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed({"body": field_error("invalid_body", "send a JSON object")})
    problems: dict[str, dict[str, str]] = {}
    platform = body.get("platform")
    if platform not in ("ios", "android"):
        problems["platform"] = _platform_problem(platform)
    else:
        problem = _token_problem(platform, body.get("token"))
        if problem is not None:
            problems["token"] = problem
    for key, rule, expected in (
        ("app_id", APP_ID, "an app id: send the bundle id (iOS) or package name (Android)"),
        ("locale", LOCALE, "a locale: send a language (fr) or language and region (pt_BR)"),
    ):
        value = body.get(key)
        if value is not None and not (isinstance(value, str) and rule.fullmatch(value)):
            problems[key] = field_error("invalid_value", f"{_shown(value)} is not {expected}")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 100):
        problems["name"] = field_error(
            "too_long", "the device's name is at most 100 characters of text"
        )
    for key in set(body) - set(_DEVICE_KEYS):
        problems[str(key)[:100]] = field_error(
            "unknown_field", f"a device has no {str(key)[:100]!r}: send {', '.join(_DEVICE_KEYS)}"
        )
    if problems:
        raise ValidationFailed(problems)
    return {k: body.get(k) for k in ("platform", "token", "app_id", "locale", "name")}


def _shown(value: Any) -> str:
    """A client's value as an error message quotes it (cut short)."""
    text = repr(value) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _platform_problem(platform: Any) -> dict[str, str]:
    if platform is None:
        return field_error("required", "the device's platform is missing: send ios or android")
    return field_error(
        "invalid_choice", f"{_shown(platform)} is not a platform: send ios or android"
    )


def _token_problem(platform: str, token: Any) -> dict[str, str] | None:
    vendor = VENDOR[platform][0]
    what = "APNs device token" if platform == "ios" else "FCM registration token"
    if token is None:
        return field_error("required", f"the {what} is missing: send the one {vendor} gave the app")
    pattern = APNS_TOKEN if platform == "ios" else FCM_TOKEN
    if isinstance(token, str) and pattern.fullmatch(token):
        return None
    shape = "64 or more hex digits" if platform == "ios" else "20-4096 of A-Z a-z 0-9 _ : -"
    got = f"{len(token)} characters" if isinstance(token, str) else f"a {type(token).__name__}"
    return field_error("invalid_value", f"not an {what} ({got}): expected {shape}")


def _app_id(apps: Mapping[str, PushApp], platform: str, app_id: str | None) -> str:
    """The app id a device is kept with: the one it sent, if a configured app takes it, else
    the only app of its platform's. 409 push_not_configured when no app would send to it."""
    mine = serving(apps, platform)
    fix = "an admin adds it to the runtime setting push.apps (see the README's Push section)"
    if not mine:
        raise Conflict(f"{no_app(apps, platform)}: {fix}", code="push_not_configured")
    if app_id is None:
        if len(mine) == 1:
            return mine[0].app_id_for(platform)
        _, name, what = VENDOR[platform]
        raise ValidationFailed(
            {
                "app_id": field_error(
                    "required",
                    f"{len(mine)} {name} apps are configured, so the device must say which it"
                    f" belongs to: send app_id, the {what} your app was built with",
                )
            }
        )
    if find_app(apps, platform, app_id) is None:
        raise Conflict(f"{no_app(apps, platform, app_id)}: {fix}", code="push_not_configured")
    return app_id


async def register(ctx: AppContext, caller: Identity, body: Any) -> tuple[dict[str, Any], bool]:
    """(the device, whether it is new)."""
    values = _parse_device(body)
    who = owner(caller, body.get("user_id"), body.get("install_id"))
    values["app_id"] = _app_id(ctx.runtime["push.apps"], values["platform"], values["app_id"])
    async with ctx.db.transaction() as tx:
        old = await tx.fetchrow(
            "SELECT id, user_id, install_id FROM baas.push_devices"
            " WHERE platform = $1 AND token = $2 FOR UPDATE",
            values["platform"],
            values["token"],
        )
        if old is not None and (old["user_id"], old["install_id"]) != (who.user_id, who.install_id):
            await tx.execute("DELETE FROM baas.push_topic_devices WHERE device_id = $1", old["id"])
        row = await tx.fetchrow(
            "INSERT INTO baas.push_devices (id, user_id, install_id, platform, token, app_id,"
            " locale, name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (platform, token) DO UPDATE SET user_id = excluded.user_id,"
            " install_id = excluded.install_id, app_id = excluded.app_id,"
            " locale = excluded.locale, name = coalesce(excluded.name, baas.push_devices.name),"
            " enabled = true, disabled_reason = NULL, updated = now()"
            f" RETURNING {_COLUMNS}",
            new_record_id(),
            who.user_id,
            who.install_id,
            values["platform"],
            values["token"],
            values["app_id"],
            values["locale"],
            values["name"],
        )
        await tx.execute(
            "DELETE FROM baas.push_devices WHERE id IN (SELECT id FROM baas.push_devices"
            " WHERE user_id IS NOT DISTINCT FROM $1 AND install_id IS NOT DISTINCT FROM $2"
            " ORDER BY updated DESC, id DESC OFFSET $3)",
            who.user_id,
            who.install_id,
            MAX_DEVICES_PER_OWNER,
        )
    assert row is not None
    return dict(row.items()), old is None


async def list_devices(
    ctx: AppContext, caller: Identity, user_id: Any, install_id: Any
) -> list[dict[str, Any]]:
    who = owner(caller, user_id, install_id)
    rows = await ctx.db.fetch(
        f"SELECT {_COLUMNS} FROM baas.push_devices WHERE user_id IS NOT DISTINCT FROM $1"
        " AND install_id IS NOT DISTINCT FROM $2 ORDER BY created",
        who.user_id,
        who.install_id,
    )
    return [dict(r.items()) for r in rows]


async def unregister(ctx: AppContext, caller: Identity, device_id: str, install_id: Any) -> None:
    canonical = record_id(device_id)
    found = await _owned(ctx, caller, canonical, install_id)
    await ctx.db.execute("DELETE FROM baas.push_devices WHERE id = $1", found)


async def _owned(ctx: AppContext, caller: Identity, device_id: str | None, install_id: Any) -> str:
    """The device's id if the caller may manage it; 404 otherwise (as for records)."""
    row = None
    if device_id is not None:
        row = await ctx.db.fetchrow(
            "SELECT id, user_id, install_id FROM baas.push_devices WHERE id = $1", device_id
        )
    mine = row is not None and (
        caller.is_admin
        or (caller.kind == "user" and row["user_id"] == caller.id)
        or (row["install_id"] is not None and row["install_id"] == install_id)
    )
    if row is None or not mine:
        raise NotFound("no such device", code="device_not_found")
    return str(row["id"])


async def subscribe(
    ctx: AppContext, caller: Identity, topic: str, body: Any, on: bool
) -> dict[str, Any]:
    """Join (or leave) `topic`: a device (`device_id`) or the signed-in user (all their devices)."""
    if not valid_topic(topic):
        raise ValidationFailed({"topic": field_error("invalid", "1-200 of A-Z a-z 0-9 - _ . ~ %")})
    if not isinstance(body, dict):
        raise ValidationFailed({"body": field_error("invalid_body", "send a JSON object")})
    device = body.get("device_id")
    if device is not None:
        found = await _owned(
            ctx,
            caller,
            record_id(device) if isinstance(device, str) else None,
            body.get("install_id"),
        )
        if on:
            await access.check_topic(
                ctx, topic, caller.id if caller.kind == "user" else None, caller.is_admin
            )
        await _toggle(ctx, "push_topic_devices", "device_id", found, topic, on)
        return {"topic": topic, "device_id": found, "subscribed": on}
    who = owner(caller, body.get("user_id"), body.get("install_id"))  # (refuses a malformed one)
    if who.user_id is None:
        raise Forbidden(
            "anonymous installs subscribe a device: send device_id", code="device_required"
        )
    if on:
        await access.check_topic(
            ctx, topic, caller.id if caller.kind == "user" else None, caller.is_admin
        )
    await _toggle(ctx, "push_topic_users", "user_id", who.user_id, topic, on)
    return {"topic": topic, "user_id": who.user_id, "subscribed": on}


async def _toggle(
    ctx: AppContext, table: str, column: str, subject: str, topic: str, on: bool
) -> None:
    # `table` and `column` are one of two fixed pairs above, never input.
    if not on:
        await ctx.db.execute(
            f"DELETE FROM baas.{table} WHERE topic = $1 AND {column} = $2",
            topic,
            subject,
        )
        return
    async with ctx.db.transaction() as tx:
        held = await tx.fetchval(
            f"SELECT count(*) FROM baas.{table} WHERE {column} = $1",
            subject,
        )
        if held >= MAX_TOPICS_PER_SUBSCRIBER:
            raise Forbidden(
                f"at most {MAX_TOPICS_PER_SUBSCRIBER} topics per subscriber", code="too_many_topics"
            )
        await tx.execute(
            f"INSERT INTO baas.{table} (topic, {column}) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            topic,
            subject,
        )


async def topics_of(ctx: AppContext, caller: Identity, install_id: Any) -> dict[str, Any]:
    who = owner(caller, None, install_id)
    rows = await ctx.db.fetch(
        "SELECT t.topic, t.device_id FROM baas.push_topic_devices t JOIN baas.push_devices d"
        " ON d.id = t.device_id WHERE d.user_id IS NOT DISTINCT FROM $1"
        " AND d.install_id IS NOT DISTINCT FROM $2 ORDER BY t.topic",
        who.user_id,
        who.install_id,
    )
    users = []
    if who.user_id is not None:
        users = [
            r["topic"]
            for r in await ctx.db.fetch(
                "SELECT topic FROM baas.push_topic_users WHERE user_id = $1 ORDER BY topic",
                who.user_id,
            )
        ]
    return {"user": users, "devices": [dict(r.items()) for r in rows]}
