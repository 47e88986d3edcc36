"""The admin JSON API for auth (service keys and superusers): users and their sessions, the mail
outbox, runtime settings, superusers and signing keys. The CLI and the console use it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from baas.admin.api import require_admin
from baas.auth import mail, superusers, tokens, users
from baas.errors import InvalidParameter, NotFound
from baas.http import list_params
from baas.http.request import context, query_params, read_json
from baas.http.responses import json_response, no_content
from baas.http.routing import route
from baas.runtime_settings import update as update_settings
from baas.schema.ids import record_id


async def list_users(request: Request) -> Response:
    require_admin(request)
    q = query_params(request)
    page = list_params.bounded_int(q, "page", 1, 1, 1_000_000)
    per_page = list_params.bounded_int(q, "per_page", 50, 1, 500)
    return json_response(await users.admin_list(context(request), q.get("search"), page, per_page))


async def create_user(request: Request) -> Response:
    who = require_admin(request)
    body = await users.admin_create(context(request), who, await read_json(request))
    return json_response(body, status=201)


async def get_user(request: Request) -> Response:
    require_admin(request)
    return json_response(await users.admin_get(context(request), request.path_params["id"]))


async def update_user(request: Request) -> Response:
    require_admin(request)
    body = await read_json(request)
    return json_response(
        await users.admin_update(context(request), request.path_params["id"], body)
    )


async def delete_user(request: Request) -> Response:
    require_admin(request)
    await users.admin_delete(context(request), request.path_params["id"])
    return no_content()


async def user_sessions(request: Request) -> Response:
    require_admin(request)
    items = await users.admin_sessions(context(request), request.path_params["id"])
    return json_response({"items": items})


async def revoke_user_sessions(request: Request) -> Response:
    require_admin(request)
    count = await users.admin_revoke_sessions(context(request), request.path_params["id"])
    return json_response({"revoked": count})


async def list_mail(request: Request) -> Response:
    require_admin(request)
    ctx = context(request)
    q = query_params(request)
    limit = list_params.bounded_int(q, "limit", 50, 1, mail.OUTBOX_MAX)
    recipient = q.get("recipient")
    await ctx.drain()  # mail this instance is still writing (after a 202) belongs in the list
    if recipient is not None and len(recipient) > 320:
        raise InvalidParameter("recipient is at most 320 characters")
    items = await mail.outbox(ctx.db, ctx.box, limit=limit, recipient=recipient)
    return json_response({"items": items})


async def get_mail(request: Request) -> Response:
    require_admin(request)
    ctx = context(request)
    mail_id = record_id(request.path_params["id"])
    if mail_id is None:
        raise NotFound("no mail with this id", code="mail_not_found")
    return json_response(await mail.message(ctx.db, ctx.box, mail_id))


async def get_settings(request: Request) -> Response:
    require_admin(request)
    return json_response({"items": context(request).runtime.describe()})


async def patch_settings(request: Request) -> Response:
    who = require_admin(request)
    ctx = context(request)
    await update_settings(ctx.db, ctx.box, await read_json(request), who.label, ctx.outbound)
    await ctx.runtime.reload(ctx.db, ctx.box)  # this instance at once; the others on NOTIFY
    ctx.mailer.wake()
    return json_response({"items": ctx.runtime.describe()})


async def list_superusers(request: Request) -> Response:
    require_admin(request)
    return json_response({"items": await superusers.list_all(context(request).db)})


async def create_superuser(request: Request) -> Response:
    require_admin(request)
    ctx = context(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidParameter('send {"email": ..., "password": ...}', code="invalid_body")
    row = await superusers.create(
        ctx.db, body.get("email"), body.get("password"), ctx.runtime["auth.password_min_length"]
    )
    await superusers.prepare_setup(ctx.db, ctx.settings.data_dir)  # setup is over: drop its token
    return json_response(row, status=201)


async def delete_superuser(request: Request) -> Response:
    who = require_admin(request)
    by = who.id if who.kind == "superuser" else None
    ctx = context(request)
    deleted = await superusers.delete(ctx.db, request.path_params["id"], by)
    await ctx.revoked.reload(ctx.db, deleted)
    return no_content()


async def list_signing_keys(request: Request) -> Response:
    require_admin(request)
    return json_response({"items": await tokens.list_signing_keys(context(request).db)})


async def rotate_signing_key(request: Request) -> Response:
    require_admin(request)
    ctx = context(request)
    rotated = await tokens.rotate_signing_key(ctx.db, ctx.box)
    await ctx.signer.reload(ctx.db, ctx.box)
    return json_response(rotated, status=201)


async def revoke_signing_key(request: Request) -> Response:
    require_admin(request)
    ctx = context(request)
    await tokens.revoke_signing_key(ctx.db, request.path_params["kid"])
    await ctx.signer.reload(ctx.db, ctx.box)  # this instance at once; the others on NOTIFY
    return no_content()


routes = [
    route("/api/admin/users", GET=list_users, POST=create_user),
    route("/api/admin/users/{id}", GET=get_user, PATCH=update_user, DELETE=delete_user),
    route("/api/admin/users/{id}/sessions", GET=user_sessions, DELETE=revoke_user_sessions),
    route("/api/admin/mail", GET=list_mail),
    route("/api/admin/mail/{id}", GET=get_mail),
    route("/api/admin/settings", GET=get_settings, PATCH=patch_settings),
    route("/api/admin/superusers", GET=list_superusers, POST=create_superuser),
    route("/api/admin/superusers/{id}", DELETE=delete_superuser),
    route("/api/admin/signing-keys", GET=list_signing_keys),
    route("/api/admin/signing-keys/rotate", POST=rotate_signing_key),
    route("/api/admin/signing-keys/{kid}", DELETE=revoke_signing_key),
]
