"""A client that goes away in the middle of its request body, on a real server: a normal end of
that request (access log status 499), no traceback, no error logged, nothing written."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from PIL import Image

from tests.conftest import SERVICE_KEY, new_database
from tests.e2e import wire
from tests.e2e.servers import Server, access_entries, eventually, running, tracebacks

pytestmark = pytest.mark.slow

SCHEMA = {
    "collections": {
        "posts": {"fields": {"title": "text", "attachment": {"type": "file"}}},
    }
}
DECLARED = 1_000_000  # under BAAS_MAX_BODY_BYTES: the server waits for all of it
BOUNDARY = "----wire-test-boundary"


class Served:
    def __init__(self, server: Server, database_url: str, storage: Path) -> None:
        self.server, self.database_url, self.storage = server, database_url, storage

    def count(self, query: str) -> int:
        async def run() -> int:
            conn = await asyncpg.connect(self.database_url)
            try:
                return int(await conn.fetchval(query))
            finally:
                await conn.close()

        return asyncio.run(run())


@pytest.fixture(scope="module")
def served(
    pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    database_url = new_database(pg_server_url, template_db)
    tmp = tmp_path_factory.mktemp("disconnect")
    with running(tmp, {"BAAS_DATABASE_URL": database_url}) as server:
        with server.client() as client:
            applied = client.post("/api/admin/schema/apply", json={"document": SCHEMA})
            assert applied.status_code == 200, applied.text
        yield Served(server, database_url, tmp / "data" / "storage")


def png() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((600, 600), 64).save(out, "PNG")  # noise: it does not compress small
    return out.getvalue()


def send_part_and_close(port: int, target: str, content_type: str, part: bytes) -> str:
    """Send a request declaring DECLARED bytes of body, then `part` of them, then close; the
    request id it carried."""
    request_id = f"gone-{uuid.uuid4().hex[:12]}"
    head = (
        f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {SERVICE_KEY}\r\n"
        f"X-Request-Id: {request_id}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {DECLARED}\r\n\r\n"
    )
    with wire.connect(port) as sock:
        sock.sendall(head.encode() + part)
    return request_id


def ended_normally(served: Served, request_id: str, before: int) -> None:
    server = served.server
    eventually(lambda: access_entries(server, request_id) or tracebacks(server) > before)
    log = server.output()
    assert tracebacks(server) == before, log[-4000:]
    [entry] = access_entries(server, request_id)
    assert " 499 " in entry or '"status":499' in entry, entry
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert errors == [], errors


def test_a_json_create_cut_short(served: Served) -> None:
    before = tracebacks(served.server)
    part = b'{"title": "' + b"x" * 50_000
    request_id = send_part_and_close(
        served.server.port, "/api/collections/posts/records", "application/json", part
    )
    ended_normally(served, request_id, before)
    assert served.count("SELECT count(*) FROM public.posts") == 0


def test_a_multipart_upload_cut_short(served: Served) -> None:
    before = tracebacks(served.server)
    image = png()
    assert len(image) > 200_000
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="title"\r\n\r\nhalf\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="attachment"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + image[:200_000]
    request_id = send_part_and_close(
        served.server.port,
        "/api/collections/posts/records",
        f"multipart/form-data; boundary={BOUNDARY}",
        part,
    )
    ended_normally(served, request_id, before)
    assert served.count("SELECT count(*) FROM public.posts") == 0
    assert served.count("SELECT count(*) FROM baas.files") == 0
    eventually(lambda: served.count("SELECT count(*) FROM baas.file_cleanup") == 0)
    leftovers = [p for p in served.storage.rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_batch_cut_short(served: Served) -> None:
    before = tracebacks(served.server)
    part = b'{"operations": [{"op": "create", "collection": "posts", "body": {"title": "a"}},'
    request_id = send_part_and_close(served.server.port, "/api/batch", "application/json", part)
    ended_normally(served, request_id, before)
    assert served.count("SELECT count(*) FROM public.posts") == 0


def test_the_server_still_answers(served: Served) -> None:
    answer = wire.request(served.server.port, "GET", "/api/health")
    assert (answer.status, answer.json()) == (200, {"status": "ok"})
