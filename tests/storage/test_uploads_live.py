"""Uploads end to end against the S3 backend (moto's S3 server through the real minio client)
and, over a real uvicorn server, a large upload streamed with bounded memory."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from baas.app import create_app
from baas.config import Settings
from baas.context import AppContext
from tests.conftest import SERVICE_KEY, apply_schema, asgi_with_state
from tests.conftest import test_authenticate as authenticate_for_tests
from tests.realtime.conftest import live_server, vm_rss_bytes
from tests.storage.conftest import s3_settings_for
from tests.storage.s3_server import MotoThread
from tests.storage.test_files_api import cleaned, png

ADMIN = {"Authorization": f"Bearer {SERVICE_KEY}"}
SCHEMA: dict[str, Any] = {
    "collections": {
        "docs": {
            "fields": {
                "title": "text",
                "photo": {"type": "file", "thumbs": ["32x32"], "mime_types": ["image/*"]},
                "blob": {"type": "file", "max_size": "1GB"},
            },
            "rules": {"list": "", "view": "", "create": "", "update": "", "delete": ""},
        }
    }
}
MB = 1024 * 1024


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, AppContext]]:
    app = create_app(settings, authenticate=authenticate_for_tests)
    async with app.router.lifespan_context(app) as state:
        transport = httpx.ASGITransport(app=asgi_with_state(app, state))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=ADMIN
        ) as client:
            await apply_schema(client, SCHEMA)
            yield client, state["ctx"]


async def test_files_round_trip_through_s3(settings: Settings, s3_server: str) -> None:
    async with running(s3_settings_for(settings, s3_server)) as (client, ctx):
        body = os.urandom(3 * MB + 17)
        created = await client.post(
            "/api/collections/docs/records",
            data={"title": "s3"},
            files=[
                ("blob", ("data.bin", body, "application/octet-stream")),
                ("photo", ("p.png", png(), "image/png")),
            ],
        )
        assert created.status_code == 201, created.text
        record = created.json()
        base = f"/api/files/docs/{record['id']}"
        got = await client.get(f"{base}/{record['blob']}")
        assert hashlib.sha256(got.content).digest() == hashlib.sha256(body).digest()
        part = await client.get(f"{base}/{record['blob']}", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == body[100:200]
        thumb = await client.get(f"{base}/{record['photo']}", params={"thumb": "32x32"})
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
        keys = [r["key"] for r in await ctx.db.fetch("SELECT key FROM baas.files")]
        assert (
            await client.delete(f"/api/collections/docs/records/{record['id']}")
        ).status_code == 204
        await cleaned(ctx)
        for key in keys:
            assert await ctx.storage.size(key) is None


async def test_presigned_downloads_redirect_to_s3(settings: Settings, s3_server: str) -> None:
    s3 = s3_settings_for(settings, s3_server).replace(s3_presigned_downloads=True)
    async with running(s3) as (client, _ctx):
        created = await client.post(
            "/api/collections/docs/records",
            files=[("blob", ("hello world.txt", b"hello from s3", "text/plain"))],
        )
        record = created.json()
        answer = await client.get(f"/api/files/docs/{record['id']}/{record['blob']}")
        assert answer.status_code == 302
        async with httpx.AsyncClient() as outside:
            fetched = await outside.get(answer.headers["location"])
        assert fetched.status_code == 200 and fetched.content == b"hello from s3"
        assert "hello world.txt" in fetched.headers["content-disposition"]


async def test_a_backend_outage_during_upload_leaves_the_record_unchanged(
    settings: Settings,
) -> None:
    s3 = MotoThread().start()
    try:
        async with running(s3_settings_for(settings, s3.url)) as (client, ctx):
            created = await client.post(
                "/api/collections/docs/records",
                data={"title": "before"},
                files=[("blob", ("a.bin", b"first version", "application/octet-stream"))],
            )
            assert created.status_code == 201, created.text
            record = created.json()
            s3.stop()  # the outage

            async def body() -> AsyncIterator[bytes]:
                yield b'--b\r\nContent-Disposition: form-data; name="title"\r\n\r\nafter\r\n'
                yield b'--b\r\nContent-Disposition: form-data; name="blob"; filename="b.bin"'
                yield b"\r\nContent-Type: application/octet-stream\r\n\r\n"
                for _ in range(20):
                    yield os.urandom(MB)
                yield b"\r\n--b--\r\n"

            answer = await client.patch(
                f"/api/collections/docs/records/{record['id']}",
                content=body(),
                headers={"Content-Type": "multipart/form-data; boundary=b"},
                timeout=60,
            )
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "storage_unavailable"
            after = await client.get(f"/api/collections/docs/records/{record['id']}")
            assert after.json()["title"] == "before"
            assert after.json()["blob"] == record["blob"]
            rows = await ctx.db.fetch("SELECT key, name FROM baas.files")
            assert [r["name"] for r in rows] == [record["blob"]]
            listed = await ctx.db.fetch("SELECT key FROM baas.file_cleanup")
            assert len(listed) == 1  # the failed upload's key: deleted once the backend is back
            assert listed[0]["key"] != rows[0]["key"]
    finally:
        s3.stop()


async def test_a_large_upload_streams_with_bounded_memory(settings: Settings) -> None:
    size = 300 * MB
    async with live_server(settings) as live:
        await apply_schema(live.rest, SCHEMA)
        digest = hashlib.sha256()

        async def body() -> AsyncIterator[bytes]:
            yield b'--b\r\nContent-Disposition: form-data; name="blob"; filename="big.bin"'
            yield b"\r\nContent-Type: application/octet-stream\r\n\r\n"
            chunk = os.urandom(MB)
            for n in range(size // MB):
                piece = chunk[n % 7 :] + chunk[: n % 7]
                digest.update(piece)
                yield piece
            yield b"\r\n--b--\r\n"

        baseline = vm_rss_bytes()
        peak = baseline
        done = asyncio.Event()

        async def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, vm_rss_bytes())
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        answer = await live.rest.post(
            "/api/collections/docs/records",
            content=body(),
            headers={**ADMIN, "Content-Type": "multipart/form-data; boundary=b"},
            timeout=120,
        )
        done.set()
        await watcher
        assert answer.status_code == 201, answer.text
        assert peak - baseline < 60 * MB, (
            f"grew {(peak - baseline) / MB:.0f} MB for {size // MB} MB"
        )
        record = answer.json()
        received = hashlib.sha256()
        url = f"/api/files/docs/{record['id']}/{record['blob']}"
        async with live.rest.stream("GET", url, headers=ADMIN, timeout=120) as download:
            async for chunk in download.aiter_bytes():
                received.update(chunk)
        assert received.digest() == digest.digest()
