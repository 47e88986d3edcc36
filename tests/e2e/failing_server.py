"""`baas serve` with two more routes that fail on purpose, to see how an unhandled error looks on
the wire and in the log: `/api/test/fail` raises before answering, `/api/test/fail-midway` after
the first bytes of a streamed answer. Run as `python -m tests.e2e.failing_server serve ...`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from baas.config import Settings
from baas.http.routing import route
from cli import serve
from cli.main import app

COMMAND = ("-m", "tests.e2e.failing_server")


class Planted(RuntimeError):
    """The error the routes raise."""


async def fail(request: Request) -> Response:
    raise Planted("planted failure before the answer")


async def fail_midway(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"the first bytes"
        raise Planted("planted failure in the middle of the answer")

    return StreamingResponse(chunks(), media_type="text/plain")


def _with_failing_routes(settings: Settings) -> Starlette:
    application = _create_app(settings)
    application.router.routes += [
        route("/api/test/fail", GET=fail),
        route("/api/test/fail-midway", GET=fail_midway),
    ]
    return application


_create_app = serve.create_app

if __name__ == "__main__":
    serve.create_app = _with_failing_routes
    app()
