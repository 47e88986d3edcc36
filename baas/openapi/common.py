"""Small builders shared by the OpenAPI modules, and the statuses every operation can answer."""

from __future__ import annotations

from typing import Any

# Records and push work without credentials where rules (or an anonymous install) allow it:
# a bearer token is optional there, never required.
OPTIONAL_AUTH: list[dict[str, Any]] = [{}, {"bearer": []}]
PUBLIC: list[dict[str, Any]] = []  # no credentials needed (a wrong one is still a 401)
_METHODS = ("get", "put", "post", "delete", "patch", "head")
# Operations that answer from memory: the database being away does not reach them.
_NO_DATABASE = frozenset({"/api/auth/jwks.json", "/api/auth/methods", "/api/health/live"})
# Operations that ignore the query string (every other one refuses unknown parameters).
_NO_QUERY = frozenset({*_NO_DATABASE, "/api/health", "/api/health/ready"})


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def errors(*codes: str) -> dict[str, Any]:
    return {code: {"$ref": f"#/components/responses/{code}"} for code in codes}


def add_common_statuses(paths: dict[str, Any]) -> None:
    """Document, on each operation, the answers that come from the layers every request crosses:
    the wire (414, 431: a head past BAAS_MAX_HEADER_BYTES), the request middleware (401 for a
    wrong bearer token, whatever the route; 413 for a body past BAAS_MAX_BODY_BYTES), the query
    string (400 for an unknown or malformed parameter), the JSON reader (400 malformed, 415 not
    JSON) and the database (503 when it is away or too slow)."""
    for path, item in paths.items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            codes = ["401", "414", "431"]
            if path not in _NO_QUERY:
                codes.append("400")
            body = operation.get("requestBody")
            if body is not None:
                codes += ["400", "413"]
                if "application/json" in body["content"]:
                    codes.append("415")
            if path not in _NO_DATABASE:
                codes.append("503")
            responses = operation["responses"]
            for code in codes:
                responses.setdefault(code, errors(code)[code])
            operation["responses"] = dict(sorted(responses.items()))
