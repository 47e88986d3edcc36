"""The API error hierarchy: stable codes, HTTP statuses and the one JSON error shape.

Raise an `ApiError` anywhere below the HTTP layer; `app.py` renders it with `error_body`.
Codes are part of the public API (documented in the README) and never change meaning.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error a client can act on: status, stable code, human message, optional details."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        fields: dict[str, dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = fields or {}
        self.headers = headers or {}
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        error.update(self.details)
        return {"error": error}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class MalformedJson(ApiError):
    status, code = 400, "malformed_json"


class InvalidParameter(ApiError):
    status, code = 400, "invalid_parameter"


class InvalidValue(ApiError):
    status, code = 400, "invalid_value"


class ValidationFailed(ApiError):
    """Per-field problems; `fields` maps field name -> {"code", "message"}."""

    status, code = 400, "validation_failed"

    def __init__(self, fields: dict[str, dict[str, str]], message: str | None = None) -> None:
        names = ", ".join(sorted(fields))
        super().__init__(message or f"invalid values for: {names}", fields=fields)


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str = "authentication required", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kw)


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "body_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"


class InternalError(ApiError):
    status, code = 500, "internal_error"


def field_error(code: str, message: str) -> dict[str, str]:
    """One entry of a ValidationFailed `fields` map."""
    return {"code": code, "message": message}


def error_body(exc: ApiError, request_id: str | None = None) -> dict[str, Any]:
    body = exc.body()
    if request_id:
        body["error"]["request_id"] = request_id
    return body


def internal_error_body(request_id: str | None) -> dict[str, Any]:
    """A 500 says "internal error" and the request id, nothing more."""
    return error_body(InternalError("internal error"), request_id)
