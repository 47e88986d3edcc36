"""One route per path with a handler per method, so 405 answers carry the full `Allow` list and
the router scans each path once. HEAD is answered wherever GET is, by GET's handler: the server
sends the same status and headers (Content-Length of GET's body included) and drops the body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]


def route(path: str, **handlers: Handler) -> Route:
    """`route("/x", GET=list_x, POST=create_x)`."""
    by_method = {method.upper(): handler for method, handler in handlers.items()}
    if "GET" in by_method:
        by_method.setdefault("HEAD", by_method["GET"])

    async def endpoint(request: Request) -> Response:
        return await by_method[request.method](request)

    return Route(path, endpoint, methods=list(by_method), name=path)
