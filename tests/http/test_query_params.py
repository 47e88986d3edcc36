"""The query string is read in one place: a parameter given twice is a 400 `repeated_parameter`
naming it, on every route that reads one, never a silent choice of one of the values."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.conftest import apply_schema
from tests.records.scenarios import Case, cases, run

SCHEMA = {"collections": {"posts": {"fields": {"title": "text", "views": "integer"}}}}
POSTS = "/api/collections/posts/records"
ONE = "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b"
ROOT = Path(__file__).resolve().parents[2]


def repeated(name: str, says: str = "") -> dict[str, object]:
    def message(text: str) -> bool:
        return f"the query parameter {name!r} is given more than once" in text and says in text

    return {"error": {"code": "repeated_parameter", "parameter": name, "message": message}}


REPEATS = [
    Case("filter twice", "GET", POSTS + "?filter=views>1&filter=views<1", status=400, expect=repeated("filter", "join the conditions with AND")),
    Case("sort twice", "GET", POSTS + "?sort=title&sort=-views", status=400, expect=repeated("sort", "separated by commas")),
    Case("page twice", "GET", POSTS + "?page=1&page=2", status=400, expect=repeated("page")),
    Case("the same value twice", "GET", POSTS + "?per_page=5&per_page=5", status=400, expect=repeated("per_page")),
    Case("an empty one and a full one", "GET", POSTS + "?filter=&filter=views>1", status=400, expect=repeated("filter")),
    Case("one record's fields twice", "GET", f"{POSTS}/{ONE}?fields=title&fields=views", status=400, expect=repeated("fields")),
    Case("a file's token twice", "GET", f"/api/files/posts/{ONE}/a.png?token=a&token=b", status=400, expect=repeated("token")),
    Case("push devices' install_id twice", "GET", "/api/push/devices?install_id=a&install_id=b", status=400, expect=repeated("install_id")),
    Case("admin users' page twice", "GET", "/api/admin/users?page=1&page=2", status=400, expect=repeated("page")),
    Case("admin jobs' status twice", "GET", "/api/admin/jobs?status=dead&status=done", status=400, expect=repeated("status")),
    Case("a reset link's token twice", "GET", "/auth/reset-password?token=a&token=b", status=400, expect=repeated("token")),
    Case("each once is fine", "GET", POSTS + "?filter=views>1&sort=title&page=1", status=200),
]  # fmt: skip


@cases(REPEATS)
async def test_a_repeated_parameter_is_refused_by_name(
    admin: httpx.AsyncClient, case: Case
) -> None:
    await apply_schema(admin, SCHEMA)
    await run(admin, case)


def test_handlers_read_the_query_string_only_through_the_one_reader() -> None:
    """`request.query_params` keeps the last of repeated values; only `query_params(request)`,
    which refuses repeats, may read it."""
    readers = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "baas").rglob("*.py")
        if re.search(r"\.query_params\b", path.read_text())
    ]
    assert readers == ["baas/http/request.py"], readers
