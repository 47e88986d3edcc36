"""Scenario tables for the HTTP API: one `Case` per row (method, path, body, expected status and
a subset of the expected JSON body), run against the in-process app by `run`.

Expected bodies are matched as subsets: dict keys not named are ignored, `ABSENT` demands a key is
missing, a callable is a predicate, anything else must be equal. Every 4xx/5xx is also checked for
the one error shape `{"error": {"code", "message", "request_id", ...}}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

NO_BODY: Any = object()


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Ref:
    """A placeholder for the id of a record the test created before running the case."""

    name: str


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: Any = NO_BODY
    status: int = 200
    expect: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def cases(rows: Sequence[Case]) -> Any:
    """`pytest.mark.parametrize` over scenario rows, each named by its `name`."""
    return pytest.mark.parametrize("case", rows, ids=[row.name for row in rows])


def error(code: str, **fields: str) -> dict[str, Any]:
    """The expected body of an error with `code` and (optionally) per-field codes."""
    body: dict[str, Any] = {"code": code}
    if fields:
        body["fields"] = {name: {"code": c} for name, c in fields.items()}
    return {"error": body}


def resolve(value: Any, ids: dict[str, str]) -> Any:
    """`value` with every `Ref` replaced by the id it names."""
    if isinstance(value, Ref):
        return ids[value.name]
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    return value


async def run(client: httpx.AsyncClient, case: Case, **ids: str) -> httpx.Response:
    """Send the case's request and check the status, the body subset and the error shape."""
    kwargs: dict[str, Any] = {"headers": case.headers}
    if isinstance(case.body, bytes):
        kwargs["content"] = case.body
    elif case.body is not NO_BODY:
        kwargs["json"] = resolve(case.body, ids)
    response = await client.request(case.method, case.path.format(**ids), **kwargs)
    assert response.status_code == case.status, f"{case.name}: {response.text}"
    if response.status_code >= 400:
        assert_error_shape(response)
    if case.expect is not None:
        assert_matches(response.json(), resolve(case.expect, ids), case.name)
    return response


def assert_error_shape(response: httpx.Response) -> None:
    """The one JSON error shape, with the request id the response header carries."""
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    assert error["request_id"] == response.headers["x-request-id"], body
    assert response.status_code != 500 or error["code"] == "internal_error"
    for entry in error.get("fields", {}).values():
        assert set(entry) == {"code", "message"}, body


def assert_matches(actual: Any, expected: Any, where: str = "body") -> None:
    """`actual` holds everything `expected` describes (see the module docstring)."""
    if callable(expected) and not isinstance(expected, type):
        assert expected(actual), f"{where}: {actual!r} fails {expected!r}"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        for key, value in expected.items():
            if value is ABSENT:
                assert key not in actual, f"{where}.{key} should be absent: {actual!r}"
            else:
                assert key in actual, f"{where}.{key} is missing: {actual!r}"
                assert_matches(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_matches(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
