"""HTTP routes of the auth API under /api/auth (and the superuser sign-in and first-run setup
under /api/admin). Each handler reads the request, calls one service function and renders it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from baas.auth import account, flows, oauth, sessions, superusers, tokens
from baas.auth.users import me as me_view
from baas.errors import NotFound
from baas.http import list_params
from baas.http.request import client, context, identity, query_params, read_json
from baas.http.responses import json_response, no_content
from baas.http.routing import route
from baas.schema.ids import record_id

ACCEPTED = {"status": "accepted"}


async def _body(request: Request) -> Any:
    return await read_json(request)


async def _optional_body(request: Request) -> Any:
    if not await request.body():
        return {}
    return await read_json(request)


async def sign_up(request: Request) -> Response:
    status, body = await flows.sign_up(
        context(request), identity(request), await _body(request), client(request)
    )
    return json_response(body, status=status)


async def sign_in(request: Request) -> Response:
    return json_response(
        await flows.sign_in(context(request), await _body(request), client(request))
    )


async def anonymous(request: Request) -> Response:
    body = await flows.sign_in_anonymously(context(request), client(request))
    return json_response(body, status=201)


async def mfa_verify(request: Request) -> Response:
    body = await flows.answer_challenge(context(request), await _body(request), client(request))
    return json_response(body)


async def refresh(request: Request) -> Response:
    return json_response(await flows.refresh(context(request), await _body(request)))


async def sign_out(request: Request) -> Response:
    await flows.sign_out(context(request), identity(request), await _optional_body(request))
    return no_content()


async def me(request: Request) -> Response:
    """The signed-in user; for a superuser (the console), their superuser account."""
    who = identity(request)
    if who.kind == "superuser" and who.id:
        view = await flows.superuser_view(context(request).db, who.id)
        return json_response({**view, "role": "superuser"})
    user_id = account.signed_in_user(who)
    return json_response(await me_view(context(request), user_id))


async def list_sessions(request: Request) -> Response:
    who = identity(request)
    subject = account.signed_in_subject(who)
    items = await sessions.list_sessions(context(request).db, subject, who.session)
    return json_response({"items": items})


async def revoke_sessions(request: Request) -> Response:
    """End every session of the caller; `?keep_current=true` keeps this one."""
    who = identity(request)
    subject = account.signed_in_subject(who)
    query = query_params(request)
    list_params.reject_unknown(query, ("keep_current",))  # a misspelt one would end this one too
    keep = who.session if list_params.boolean(query, "keep_current") else None
    ctx = context(request)
    count = await sessions.revoke_all(ctx.db, subject, "signed_out_everywhere", keep)
    await ctx.revoked.reload(ctx.db, subject)
    return json_response({"revoked": count})


async def revoke_session(request: Request) -> Response:
    subject = account.signed_in_subject(identity(request))
    sid = record_id(request.path_params["session_id"])
    if sid is None:
        raise NotFound("no active session with this id", code="session_not_found")
    ctx = context(request)
    await sessions.revoke_session(ctx.db, subject, sid, "signed_out")
    await ctx.revoked.reload(ctx.db, subject)
    return no_content()


async def request_verification(request: Request) -> Response:
    await account.request_verification(context(request), await _body(request), client(request))
    return json_response(ACCEPTED, status=202)


async def confirm_verification(request: Request) -> Response:
    return json_response(await account.confirm_verification(context(request), await _body(request)))


async def request_reset(request: Request) -> Response:
    await account.request_reset(context(request), await _body(request), client(request))
    return json_response(ACCEPTED, status=202)


async def confirm_reset(request: Request) -> Response:
    return json_response(await account.confirm_reset(context(request), await _body(request)))


async def request_email_change(request: Request) -> Response:
    await account.request_email_change(
        context(request), identity(request), await _body(request), client(request)
    )
    return json_response(ACCEPTED, status=202)


async def confirm_email_change(request: Request) -> Response:
    body = await account.confirm_email_change(context(request), await _body(request))
    return json_response(body)


async def change_password(request: Request) -> Response:
    await account.change_password(context(request), identity(request), await _body(request))
    return no_content()


async def oidc_sign_in(request: Request) -> Response:
    body = await oauth.sign_in_with_id_token(
        context(request),
        identity(request),
        request.path_params["provider"],
        await _body(request),
        client(request),
    )
    return json_response(body)


async def list_identities(request: Request) -> Response:
    user_id = account.signed_in_user(identity(request))
    return json_response({"items": await oauth.identities(context(request), user_id)})


async def totp_enroll(request: Request) -> Response:
    return json_response(await account.enroll_totp(context(request), identity(request)))


async def totp_confirm(request: Request) -> Response:
    body = await account.confirm_totp(context(request), identity(request), await _body(request))
    return json_response(body)


async def totp_disable(request: Request) -> Response:
    await account.disable_totp(context(request), identity(request), await _body(request))
    return no_content()


async def recovery_codes(request: Request) -> Response:
    body = await account.new_recovery_codes(
        context(request), identity(request), await _body(request)
    )
    return json_response(body)


async def jwks(request: Request) -> Response:
    return Response(
        context(request).signer.jwks,
        media_type="application/jwk-set+json",
        headers={"cache-control": f"public, max-age={tokens.JWKS_MAX_AGE_S}"},
    )


async def methods(request: Request) -> Response:
    """What an app's sign-in screen can offer."""
    ctx = context(request)
    users = ctx.schema.collection("users")
    return json_response(
        {
            "password": True,
            "sign_up": bool(users and users.rules.create is not None),
            "anonymous": ctx.runtime["auth.anonymous"],
            "oidc": sorted(ctx.runtime["auth.oidc"]),
            "require_verification": ctx.runtime["auth.require_verification"],
            "password_min_length": ctx.runtime["auth.password_min_length"],
        }
    )


async def superuser_sign_in(request: Request) -> Response:
    body = await superusers.sign_in(context(request), await _body(request), client(request))
    return json_response(body)


async def setup(request: Request) -> Response:
    body = await superusers.complete_setup(context(request), await _body(request), client(request))
    return json_response(body, status=201)


routes = [
    route("/api/auth/sign-up", POST=sign_up),
    route("/api/auth/sign-in", POST=sign_in),
    route("/api/auth/anonymous", POST=anonymous),
    route("/api/auth/refresh", POST=refresh),
    route("/api/auth/sign-out", POST=sign_out),
    route("/api/auth/me", GET=me),
    route("/api/auth/methods", GET=methods),
    route("/api/auth/jwks.json", GET=jwks),
    route("/api/auth/sessions", GET=list_sessions, DELETE=revoke_sessions),
    route("/api/auth/sessions/{session_id}", DELETE=revoke_session),
    route("/api/auth/verification", POST=request_verification),
    route("/api/auth/verification/confirm", POST=confirm_verification),
    route("/api/auth/password-reset", POST=request_reset),
    route("/api/auth/password-reset/confirm", POST=confirm_reset),
    route("/api/auth/email-change", POST=request_email_change),
    route("/api/auth/email-change/confirm", POST=confirm_email_change),
    route("/api/auth/password", POST=change_password),
    route("/api/auth/oidc/{provider}", POST=oidc_sign_in),
    route("/api/auth/identities", GET=list_identities),
    route("/api/auth/mfa/totp", POST=totp_enroll),
    route("/api/auth/mfa/totp/disable", POST=totp_disable),
    route("/api/auth/mfa/totp/confirm", POST=totp_confirm),
    route("/api/auth/mfa/recovery-codes", POST=recovery_codes),
    route("/api/auth/mfa/verify", POST=mfa_verify),
    route("/api/admin/auth/sign-in", POST=superuser_sign_in),
    route("/api/admin/setup", POST=setup),
]
