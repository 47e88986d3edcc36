"""Two real server processes on one database follow each other's schema changes and writes."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.servers import eventually, running

POSTS = {"collections": {"posts": {"fields": {"title": {"type": "text", "required": True}}}}}
WITH_VIEWS = {
    "collections": {
        "posts": {"fields": {"title": {"type": "text", "required": True}, "views": "integer"}}
    }
}


def _collections(client) -> list[str]:  # type: ignore[no-untyped-def]
    return list(client.get("/api/admin/collections").json()["collections"])


def test_schema_changes_reach_the_other_server(database_url: str, tmp_path: Path) -> None:
    env = {"BAAS_DATABASE_URL": database_url}
    with (
        running(tmp_path, env, name="a") as a,
        running(tmp_path, env, name="b") as b,
        a.client() as ca,
        b.client() as cb,
    ):
        assert ca.post("/api/admin/schema/apply", json={"document": POSTS}).status_code == 200
        eventually(lambda: sorted(_collections(cb)) == ["posts", "users"])

        created = cb.post("/api/collections/posts/records", json={"title": "from b"})
        assert created.status_code == 201
        got = ca.get(f"/api/collections/posts/records/{created.json()['id']}")
        assert got.json()["title"] == "from b"

        assert cb.post("/api/admin/schema/apply", json={"document": WITH_VIEWS}).status_code == 200
        eventually(
            lambda: (
                ca.post(
                    "/api/collections/posts/records", json={"title": "x", "views": 3}
                ).status_code
                == 201
            )
        )
        ready = ca.get("/api/health/ready").json()
        assert ready["schema_version"] == 3  # 1 is the built-in users collection
