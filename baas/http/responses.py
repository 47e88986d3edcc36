"""JSON responses rendered with orjson (UTC datetimes end in Z), and the error renderer."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from baas.errors import ApiError, error_body

_OPTIONS = orjson.OPT_UTC_Z


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, option=_OPTIONS)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(data, status_code=status, headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


def error_response(exc: ApiError, request_id: str | None) -> Response:
    return JSONResponse(error_body(exc, request_id), status_code=exc.status, headers=exc.headers)
