"""OpenAPI paths of the auth API (/api/auth) and of the admin API's auth operations."""

from __future__ import annotations

from typing import Any

from baas.openapi.common import OPTIONAL_AUTH, PUBLIC, errors, json_content

_OBJECT: dict[str, Any] = {"type": "object"}
_STR = {"type": "string"}
_UUID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}

TOKENS: dict[str, Any] = {
    "type": "object",
    "description": "A session: a short-lived access token and a rotating refresh token; or, "
    "when the account has a second factor, a challenge to answer at /api/auth/mfa/verify.",
    "properties": {
        "access_token": _STR,
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
        "expires_at": {"type": "integer"},
        "refresh_token": _STR,
        "session_id": _UUID,
        "user": _OBJECT,
        "mfa_required": {"type": "boolean"},
        "mfa_token": _STR,
        "methods": {"type": "array", "items": _STR},
    },
}
_ME: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": _UUID,
        "email": {"type": ["string", "null"]},
        "verified": {"type": "boolean"},
        "anonymous": {"type": "boolean"},
        "last_sign_in": {"type": ["string", "null"], "format": "date-time"},
        "has_password": {"type": "boolean"},
        "mfa_enabled": {"type": "boolean"},
        "providers": {"type": "array", "items": _STR},
    },
    "additionalProperties": True,
}
_SESSION = {
    "type": "object",
    "properties": {
        "id": _UUID,
        "created": _TIME,
        "last_used": _TIME,
        "expires": _TIME,
        "amr": {"type": "array", "items": _STR},
        "user_agent": {"type": ["string", "null"]},
        "ip": {"type": ["string", "null"]},
        "current": {"type": "boolean"},
    },
}
_ACCEPTED = {"type": "object", "properties": {"status": {"const": "accepted"}}}


def _items(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"items": {"type": "array", "items": item}}}


def _body(*required: str, **props: Any) -> dict[str, Any]:
    properties = {name: props.get(name, _STR) for name in (*required, *props)}
    return {"type": "object", "properties": properties, "required": list(required)}


def _op(
    op_id: str,
    tag: str,
    summary: str,
    status: str,
    schema: dict[str, Any] | None,
    *codes: str,
    body: dict[str, Any] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": summary}
    if schema is not None:
        ok["content"] = json_content(schema)
    operation: dict[str, Any] = {
        "operationId": op_id,
        "tags": [tag],
        "summary": summary,
        "responses": {status: ok, **errors(*codes)},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": json_content(body)}
    if public:
        operation["security"] = PUBLIC
    return operation


def _auth(op_id: str, summary: str, status: str, schema: Any, *codes: str, **kw: Any) -> Any:
    return _op(op_id, "auth", summary, status, schema, *codes, **kw)


def _admin(op_id: str, summary: str, status: str, schema: Any, *codes: str, **kw: Any) -> Any:
    return _op(op_id, "admin", summary, status, schema, "401", "403", *codes, **kw)


def _path_id(name: str = "id") -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": _UUID}]


def auth_paths() -> dict[str, Any]:
    credentials = _body("email", "password")
    token = _body("token")
    code = _body(code=_STR, recovery_code=_STR)
    return {
        "/api/auth/sign-up": {
            "post": _auth(
                "signUp",
                "Create an account (202: confirm the emailed link first; 201: signed in)",
                "201",
                TOKENS,
                "400",
                "403",
                "409",
                "429",
                body={**credentials, "additionalProperties": True},
                public=True,
            )
        },
        "/api/auth/sign-in": {
            "post": _auth(
                "signIn",
                "Sign in with email and password",
                "200",
                TOKENS,
                "400",
                "401",
                "403",
                "429",
                body=credentials,
                public=True,
            )
        },
        "/api/auth/anonymous": {
            "post": _auth(
                "signInAnonymously",
                "A new anonymous account and its session",
                "201",
                TOKENS,
                "403",
                "429",
                public=True,
            )
        },
        "/api/auth/refresh": {
            "post": _auth(
                "refresh",
                "New tokens for a refresh token (which is retired)",
                "200",
                TOKENS,
                "400",
                "401",
                body=_body("refresh_token"),
                public=True,
            )
        },
        "/api/auth/sign-out": {
            "post": _auth(
                "signOut",
                "End this session (or the refresh token's)",
                "204",
                None,
                "401",
            )
        },
        "/api/auth/me": {"get": _auth("me", "The signed-in user", "200", _ME, "401", "404")},
        "/api/auth/methods": {
            "get": _auth("authMethods", "What sign-in offers", "200", _OBJECT, public=True)
        },
        "/api/auth/jwks.json": {"get": _jwks()},
        "/api/auth/sessions": {
            "get": _auth("listSessions", "Your signed-in devices", "200", _items(_SESSION), "401"),
            "delete": {
                **_auth(
                    "revokeSessions",
                    "End every session (?keep_current=true: but this one)",
                    "200",
                    {"type": "object", "properties": {"revoked": {"type": "integer"}}},
                    "401",
                ),
                "parameters": [
                    {"name": "keep_current", "in": "query", "schema": {"type": "boolean"}}
                ],
            },
        },
        "/api/auth/sessions/{session_id}": {
            "parameters": _path_id("session_id"),
            "delete": _auth("revokeSession", "End one session", "204", None, "401", "404"),
        },
        "/api/auth/verification": {
            "post": _auth(
                "requestVerification",
                "Email a new verification link",
                "202",
                _ACCEPTED,
                "400",
                "429",
                body=_body("email"),
                public=True,
            )
        },
        "/api/auth/verification/confirm": {
            "post": _auth(
                "confirmVerification",
                "Confirm an address with the link's token",
                "200",
                _OBJECT,
                "400",
                body=token,
                public=True,
            )
        },
        "/api/auth/password-reset": {
            "post": _auth(
                "requestPasswordReset",
                "Email a password reset link",
                "202",
                _ACCEPTED,
                "400",
                "429",
                body=_body("email"),
                public=True,
            )
        },
        "/api/auth/password-reset/confirm": {
            "post": _auth(
                "confirmPasswordReset",
                "Set a new password with the link's token (ends every session)",
                "200",
                _OBJECT,
                "400",
                body=_body("token", "password"),
                public=True,
            )
        },
        "/api/auth/email-change": {
            "post": _auth(
                "requestEmailChange",
                "Email a confirmation link to a new address",
                "202",
                _ACCEPTED,
                "400",
                "401",
                "403",  # wrong_password: the current one, re-entered, is wrong
                "429",
                body=_body("email", password=_STR),
            )
        },
        "/api/auth/email-change/confirm": {
            "post": _auth(
                "confirmEmailChange",
                "Switch to the new address with the link's token",
                "200",
                _OBJECT,
                "400",
                "409",
                body=token,
                public=True,
            )
        },
        "/api/auth/password": {
            "post": _auth(
                "changePassword",
                "Change your password (ends your other sessions)",
                "204",
                None,
                "400",
                "401",
                "403",  # wrong_password
                "429",  # re-entered passwords count like sign-ins
                body=_body("password", current_password=_STR),
            )
        },
        "/api/auth/oidc/{provider}": {
            "parameters": [{"name": "provider", "in": "path", "required": True, "schema": _STR}],
            "post": _auth(
                "signInWithIdToken",
                "Sign in (or link, when signed in) with a provider's ID token",
                "200",
                TOKENS,
                "400",
                "401",
                "403",
                "404",
                "409",
                "429",
                "503",
                body=_body("id_token", nonce={"type": "string", "minLength": 1, "maxLength": 512}),
            )
            | {"security": OPTIONAL_AUTH},  # signs in anonymously; links when signed in
        },
        "/api/auth/identities": {
            "get": _auth(
                "listIdentities", "Linked provider accounts", "200", _items(_OBJECT), "401"
            )
        },
        "/api/auth/mfa/totp": {
            "post": _auth(
                "enrollTotp",
                "Start TOTP enrolment: secret and otpauth URI",
                "200",
                _OBJECT,
                "401",
                "409",
            )
        },
        "/api/auth/mfa/totp/confirm": {
            "post": _auth(
                "confirmTotp",
                "Turn TOTP on with a first code: recovery codes",
                "200",
                _OBJECT,
                "400",
                "401",
                "409",  # mfa_not_enrolling, already enabled
                "429",  # second-factor attempts are limited
                body=_body("code"),
            )
        },
        "/api/auth/mfa/totp/disable": {
            "post": _auth(
                "disableTotp",
                "Turn TOTP off (a code or recovery code)",
                "204",
                None,
                "400",
                "401",
                "409",  # mfa_not_enabled
                "429",
                body=code,
            )
        },
        "/api/auth/mfa/recovery-codes": {
            "post": _auth(
                "newRecoveryCodes",
                "Replace the recovery codes",
                "200",
                _OBJECT,
                "400",
                "401",
                "409",  # mfa_not_enabled
                "429",
                body=code,
            )
        },
        "/api/auth/mfa/verify": {
            "post": _auth(
                "verifyMfa",
                "Answer a sign-in's second-factor challenge",
                "200",
                TOKENS,
                "400",
                "401",
                "429",
                body=_body("mfa_token", code=_STR, recovery_code=_STR),
                public=True,
            )
        },
        "/api/admin/auth/sign-in": {
            "post": _op(
                "superuserSignIn",
                "admin",
                "Superuser sign-in (the console)",
                "200",
                TOKENS,
                "400",
                "401",
                "429",
                body=credentials,
                public=True,
            )
        },
        "/api/admin/setup": {
            "post": _op(
                "setup",
                "admin",
                "Create the first superuser with the setup token",
                "201",
                TOKENS,
                "400",
                "409",
                "429",
                body=_body("token", "email", "password"),
                public=True,
            )
        },
        **_admin_auth_paths(),
    }


def _jwks() -> dict[str, Any]:
    """A JWK Set (RFC 7517), served as such: application/jwk-set+json."""
    operation: dict[str, Any] = _auth(
        "jwks", "Public keys that verify access tokens", "200", None, public=True
    )
    key_set = {
        "type": "object",
        "properties": {"keys": {"type": "array", "items": _OBJECT}},
        "required": ["keys"],
    }
    operation["responses"]["200"]["content"] = {"application/jwk-set+json": {"schema": key_set}}
    return operation


def _admin_auth_paths() -> dict[str, Any]:
    user_body = {
        "type": "object",
        "properties": {
            "email": _STR,
            "password": _STR,
            "verified": {"type": "boolean"},
            "disabled": {"type": "boolean"},
        },
        "additionalProperties": True,
    }
    page = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _OBJECT},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "total": {"type": "integer"},
        },
    }
    query = [
        {"name": n, "in": "query", "schema": s}
        for n, s in (
            ("search", _STR),
            ("page", {"type": "integer"}),
            ("per_page", {"type": "integer"}),
        )
    ]
    revoked = {"type": "object", "properties": {"revoked": {"type": "integer"}}}
    return {
        "/api/admin/users": {
            "get": {
                **_admin("adminListUsers", "Users, newest first", "200", page, "400"),
                "parameters": query,
            },
            "post": _admin(
                "adminCreateUser", "Create a user", "201", _OBJECT, "400", "409", body=user_body
            ),
        },
        "/api/admin/users/{id}": {
            "parameters": _path_id(),
            "get": _admin("adminGetUser", "One user", "200", _OBJECT, "404"),
            "patch": _admin(
                "adminUpdateUser",
                "Change email, password, verified, disabled",
                "200",
                _OBJECT,
                "400",
                "404",
                "409",
                body=user_body,
            ),
            "delete": _admin("adminDeleteUser", "Delete a user", "204", None, "404", "409"),
        },
        "/api/admin/users/{id}/sessions": {
            "parameters": _path_id(),
            "get": _admin("adminUserSessions", "A user's sessions", "200", _items(_SESSION), "404"),
            "delete": _admin(
                "adminRevokeUserSessions", "End every session of a user", "200", revoked, "404"
            ),
        },
        "/api/admin/mail": {
            "get": {
                **_admin(
                    "adminListMail",
                    "Recent mail (the outbox without SMTP)",
                    "200",
                    _items(_OBJECT),
                    "400",
                ),
                "parameters": [
                    {"name": "recipient", "in": "query", "schema": _STR},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                ],
            }
        },
        "/api/admin/mail/{id}": {
            "parameters": _path_id(),
            "get": _admin("adminGetMail", "One mail", "200", _OBJECT, "404"),
        },
        "/api/admin/settings": {
            "get": _admin("adminGetSettings", "Runtime settings", "200", _items(_OBJECT)),
            "patch": _admin(
                "adminUpdateSettings",
                "Change runtime settings (null: default)",
                "200",
                _items(_OBJECT),
                "400",
                body=_OBJECT,
            ),
        },
        "/api/admin/superusers": {
            "get": _admin("adminListSuperusers", "Superusers", "200", _items(_OBJECT)),
            "post": _admin(
                "adminCreateSuperuser",
                "Create a superuser",
                "201",
                _OBJECT,
                "400",
                "409",
                body=_body("email", "password"),
            ),
        },
        "/api/admin/superusers/{id}": {
            "parameters": _path_id(),
            "delete": _admin(
                "adminDeleteSuperuser", "Delete a superuser", "204", None, "404", "409"
            ),
        },
        "/api/admin/signing-keys": {
            "get": _admin(
                "adminListSigningKeys", "Access-token signing keys", "200", _items(_OBJECT)
            ),
        },
        "/api/admin/signing-keys/rotate": {
            "post": _admin(
                "adminRotateSigningKey", "Sign with a new key from now on", "201", _OBJECT
            ),
        },
        "/api/admin/signing-keys/{kid}": {
            "parameters": [
                {"name": "kid", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "delete": _admin(
                "adminRevokeSigningKey",
                "Stop trusting a signing key at once (not the only one in use)",
                "204",
                None,
                "404",
                "409",
            ),
        },
    }
