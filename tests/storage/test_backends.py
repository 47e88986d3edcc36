"""The storage backends against the one Backend contract: local (a temp directory) and s3 (moto's
S3 server over HTTP), each test run on both unless it says otherwise."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
import time
import tracemalloc
from collections.abc import Iterable
from pathlib import Path

import boto3
import httpx
import pytest

from baas.config import Settings
from baas.storage.backend import (
    CHUNK_SIZE,
    Backend,
    ObjectMissing,
    StorageUnavailable,
    Upload,
    check_key,
    open_backend,
)
from baas.storage.local import LocalBackend
from tests.storage.conftest import s3_settings_for
from tests.storage.s3_server import MotoThread, moto_process

KEY = "c1/rec/photo_ab12.png"
MiB = 1024 * 1024
UNEVEN = (1, 1000, 65_536, 70_001, MiB, 3, 250_000)


def _bytes(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


async def _write(upload: Upload, data: bytes, sizes: Iterable[int] = UNEVEN) -> None:
    """Write `data` in chunks of the given sizes, cycling through them."""
    position = 0
    while position < len(data):
        for size in sizes:
            await upload.write(data[position : position + size])
            position += size


async def _read(backend: Backend, key: str, offset: int = 0, length: int | None = None) -> bytes:
    chunks = [chunk async for chunk in backend.read(key, offset, length)]
    assert all(0 < len(chunk) <= CHUNK_SIZE for chunk in chunks)
    return b"".join(chunks)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _blocks(count: int) -> Iterable[bytes]:
    """`count` different 1 MiB chunks, made on the fly."""
    block = os.urandom(MiB)
    for i in range(count):
        yield i.to_bytes(8, "big") + block[8:]


def _multipart_uploads(settings: Settings) -> list[object]:
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    try:
        return list(s3.list_multipart_uploads(Bucket=settings.s3_bucket).get("Uploads", []))
    finally:
        s3.close()


# -- writing and reading --------------------------------------------------------------------------


async def test_upload_commit_read_round_trip(backend: Backend) -> None:
    data = _bytes(9 * MiB + 12_345)  # two parts on S3
    upload = await backend.upload(KEY, "image/png")
    await _write(upload, data)
    assert await backend.size(KEY) is None  # invisible until commit
    await upload.commit()
    assert await backend.size(KEY) == len(data)
    assert _sha(await _read(backend, KEY)) == _sha(data)


async def test_put_and_read(backend: Backend) -> None:
    await backend.put("c1/rec/thumbs/a_100x100.png", b"thumb", "image/png")
    assert await _read(backend, "c1/rec/thumbs/a_100x100.png") == b"thumb"
    assert await backend.size("c1/rec/thumbs/a_100x100.png") == 5
    await backend.put("c1/rec/empty.txt", b"", "text/plain")
    assert await _read(backend, "c1/rec/empty.txt") == b""
    assert await backend.size("c1/rec/empty.txt") == 0
    assert await backend.size("c1/rec") is None  # a "directory" of keys is no object


async def test_range_reads(backend: Backend) -> None:
    data = _bytes(200_000)
    await backend.put(KEY, data, "image/png")
    assert await _read(backend, KEY, 70_000) == data[70_000:]
    assert await _read(backend, KEY, 1000, 66_000) == data[1000:67_000]
    assert await _read(backend, KEY, 0, 10) == data[:10]
    assert await _read(backend, KEY, 199_000, 5000) == data[199_000:]  # length past the end
    assert await _read(backend, KEY, 200_000) == b""
    assert await _read(backend, KEY, 5, 0) == b""


async def test_missing_key(backend: Backend) -> None:
    assert await backend.size("c1/none/x.bin") is None
    for length in (None, 0, 10):
        with pytest.raises(ObjectMissing):
            await _read(backend, "c1/none/x.bin", 0, length)


async def test_abort_leaves_nothing(backend: Backend, backend_settings: Settings) -> None:
    small = await backend.upload("c1/rec/small.bin", "application/octet-stream")
    await _write(small, _bytes(100_000))
    await small.abort()
    big = await backend.upload("c1/rec/big.bin", "application/octet-stream")
    await _write(big, _bytes(10 * MiB), [MiB])  # on S3, a multipart upload has begun
    await big.abort()
    await big.abort()  # twice is harmless
    assert await backend.size("c1/rec/small.bin") is None
    assert await backend.size("c1/rec/big.bin") is None
    if isinstance(backend, LocalBackend):
        assert list((backend.root / ".tmp").iterdir()) == []
    else:
        assert _multipart_uploads(backend_settings) == []


async def test_abort_after_commit_keeps_the_object(backend: Backend) -> None:
    upload = await backend.upload(KEY, "image/png")
    await upload.write(b"kept")
    await upload.commit()
    await upload.abort()
    assert await _read(backend, KEY) == b"kept"


# -- deleting -------------------------------------------------------------------------------------


async def test_delete_present_and_missing_keys(backend: Backend) -> None:
    await backend.put("c1/r1/a.png", b"a", "image/png")
    await backend.put("c1/r1/b.png", b"b", "image/png")
    await backend.put("c1/r2/c.png", b"c", "image/png")
    await backend.delete(["c1/r1/a.png", "c1/r1/b.png", "c1/r1/missing.png"])
    await backend.delete([])
    assert await backend.size("c1/r1/a.png") is None
    assert await backend.size("c1/r1/b.png") is None
    assert await backend.size("c1/r2/c.png") is not None
    if isinstance(backend, LocalBackend):
        assert not (backend.root / "c1" / "r1").exists()  # emptied directories are pruned


async def test_delete_prefix(backend: Backend) -> None:
    keys = ["c1/r1/a.png", "c1/r1/thumbs/a_100x100.png", "c1/r10/b.png", "c2/r1/c.png"]
    for key in keys:
        await backend.put(key, b"x", "image/png")
    await backend.delete_prefix("c1/r1/")
    await backend.delete_prefix("c9/none/")
    assert [await backend.size(key) is not None for key in keys] == [False, False, True, True]
    with pytest.raises(ValueError, match="must end with"):
        await backend.delete_prefix("c1")


# -- keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "a//b",
        "/a",
        "a/./b",
        "a/../b",
        "a/",
        "",
        "a\nb",
        "a\x00b",
        "a\tb",
        "a b",
        "é",
        "x" * 1025,
    ],
)
def test_check_key_refuses(key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        check_key(key)


def test_check_key_accepts() -> None:
    assert check_key(KEY) == KEY
    assert check_key("x" * 1024) == "x" * 1024


async def test_every_operation_checks_keys(backend: Backend) -> None:
    for bad in ("../x", "/etc/passwd", "a//b"):
        with pytest.raises(ValueError, match="invalid storage key"):
            await backend.upload(bad, "text/plain")
        with pytest.raises(ValueError, match="invalid storage key"):
            await backend.put(bad, b"x", "text/plain")
        with pytest.raises(ValueError, match="invalid storage key"):
            await _read(backend, bad)
        with pytest.raises(ValueError, match="invalid storage key"):
            await backend.size(bad)
        with pytest.raises(ValueError, match="invalid storage key"):
            await backend.delete([KEY, bad])
        with pytest.raises(ValueError, match="invalid storage key"):
            backend.presigned_get(bad, 60, {})


# -- presigned downloads, check -------------------------------------------------------------------


async def test_presigned_get(backend: Backend) -> None:
    data = _bytes(5000)
    await backend.put(KEY, data, "application/octet-stream")
    headers = {
        "response-content-type": "image/png",
        "response-content-disposition": 'attachment; filename="photo.png"',
    }
    url = backend.presigned_get(KEY, 60, headers)
    if backend.name == "local":
        assert url is None
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.content == data
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'attachment; filename="photo.png"'


async def test_check(backend: Backend) -> None:
    description = await backend.check()
    assert description.endswith("write, read, delete OK"), description
    assert description.startswith(backend.name)
    if isinstance(backend, LocalBackend):  # the probe leaves nothing behind
        assert [p.name for p in backend.root.iterdir()] == [".tmp"]


async def test_check_names_a_missing_bucket(settings: Settings, s3_server: str) -> None:
    missing = s3_settings_for(settings, s3_server, bucket="no-such-bucket-here")
    backend = open_backend(missing.replace(s3_secret_key="hunter2-hunter2"))
    try:
        with pytest.raises(StorageUnavailable) as raised:
            await backend.check()
    finally:
        await backend.close()
    assert "bucket no-such-bucket-here does not exist" in raised.value.message
    assert "hunter2" not in raised.value.message
    assert raised.value.status == 503 and raised.value.code == "storage_unavailable"


async def test_local_check_reports_an_unwritable_directory(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("not a directory")
    backend = open_backend(settings.replace(storage_dir=tmp_path / "file" / "storage"))
    with pytest.raises(StorageUnavailable, match=r"file storage is unavailable: .*file/storage"):
        await backend.check()


# -- bounded memory -------------------------------------------------------------------------------


async def _stream_upload(backend: Backend, key: str, mebibytes: int) -> tuple[str, int]:
    """Upload `mebibytes` 1 MiB chunks; their sha256 and the peak of traced memory meanwhile."""
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        upload = await backend.upload(key, "application/octet-stream")
        for block in _blocks(mebibytes):
            digest.update(block)
            await upload.write(block)
        await upload.commit()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return digest.hexdigest(), peak


async def _read_digest(backend: Backend, key: str) -> str:
    digest = hashlib.sha256()
    async for chunk in backend.read(key):
        digest.update(chunk)
    return digest.hexdigest()


async def test_local_upload_memory_is_bounded(local_settings: Settings) -> None:
    backend = open_backend(local_settings)
    sha, peak = await _stream_upload(backend, "c1/rec/big.bin", 200)
    assert peak < 40 * MiB, peak
    assert await _read_digest(backend, "c1/rec/big.bin") == sha
    await backend.delete(["c1/rec/big.bin"])


async def test_s3_upload_memory_is_bounded(settings: Settings) -> None:
    # moto in a process of its own: in this one, its copy of the object would count.
    with moto_process() as url:
        backend = open_backend(s3_settings_for(settings, url))
        try:
            sha, peak = await _stream_upload(backend, "c1/rec/big.bin", 64)
            assert peak < 40 * MiB, peak
            assert await _read_digest(backend, "c1/rec/big.bin") == sha
        finally:
            await backend.close()


# -- outages --------------------------------------------------------------------------------------


async def test_an_outage_fails_fast(settings: Settings) -> None:
    server = MotoThread().start()
    backend = open_backend(s3_settings_for(settings, server.url))
    try:
        upload = await backend.upload("c1/rec/big.bin", "application/octet-stream")
        blocks = iter(_blocks(64))
        for block in (next(blocks) for _ in range(12)):  # the first part goes out
            await upload.write(block)
        await asyncio.to_thread(server.stop)
        started = time.monotonic()

        async def send_the_rest() -> None:
            for block in blocks:
                await upload.write(block)
            await upload.commit()

        with pytest.raises(StorageUnavailable):
            await send_the_rest()
        assert time.monotonic() - started < 15
        await upload.abort()  # never raises
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="cannot connect"):
            await backend.check()
        assert time.monotonic() - started < 15
    finally:
        server.stop()
        await backend.close()


async def test_a_silent_endpoint_times_out(settings: Settings) -> None:
    """A server that accepts connections and never answers fails within ~2 x s3_timeout_s."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        hung = s3_settings_for(settings, url, bucket="files").replace(s3_timeout_s=1)
        backend = open_backend(hung)
        started = time.monotonic()
        try:
            with pytest.raises(StorageUnavailable, match="did not answer in time"):
                await backend.check()
        finally:
            await backend.close()
        assert time.monotonic() - started < 5


async def test_abort_after_a_cancelled_commit_leaves_nothing(backend: Backend) -> None:
    upload = await backend.upload(KEY, "image/png")
    await _write(upload, _bytes(300_000))
    committing = asyncio.ensure_future(upload.commit())
    await asyncio.sleep(0)  # the commit has begun
    committing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await committing
    await upload.abort()
    assert await backend.size(KEY) is None
