"""The S3 file storage backend: any S3-compatible service (AWS S3, MinIO, R2, ...) via minio-py.

minio-py is synchronous, so every call runs in a thread of this backend's own executor, never on
the event loop, over a urllib3 pool with short timeouts and few retries: an outage fails a request
within seconds, not after minio's default five retries of five minutes. An upload streams: its
`write` feeds a small queue that a `put_object` thread reads 8 MiB parts from, so memory holds a
few chunks and one part whatever the object size. minio, urllib3 and socket errors become
StorageUnavailable (or ObjectMissing) here; nothing above this module sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import io
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, BinaryIO, TypeVar, cast
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteError, DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.helpers import check_bucket_name
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import BaseHTTPResponse

from baas.config import Settings
from baas.storage.backend import (
    CHUNK_SIZE,
    ObjectMissing,
    StorageUnavailable,
    check_key,
    check_prefix,
    check_range,
    round_trip,
)

log = logging.getLogger("baas.storage")
T = TypeVar("T")

PART_SIZE = 8 * 1024 * 1024  # multipart part size: the most an upload holds besides its queue
QUEUED_CHUNKS = 4  # chunks an upload's writer may be ahead of its put_object thread
WORKERS = 16  # threads (and pooled connections) for everything but uploads
MAX_CONNECT_TIMEOUT_S = 5.0
UPLOAD_IDLE_S = 900.0  # an upload nobody writes to, commits or aborts for this long is aborted
_EOF = object()  # queued by commit: the object is complete
_ABORT = object()  # queued by abort: the reader raises, so minio aborts its multipart upload
_PAST_END = object()  # a read whose offset is at or past the end of the object


class _Aborted(Exception):
    """Raised inside put_object by the reader of an aborted (or abandoned) upload."""


_FOREIGN = (
    MinioException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
    _Aborted,
)


class S3Backend:
    """Objects in one bucket of an S3-compatible service."""

    name = "s3"

    def __init__(self, settings: Settings) -> None:
        self.endpoint = settings.s3_endpoint.rstrip("/")
        self.bucket = settings.s3_bucket
        self._http = _pool(settings)
        self.client = _client(settings, self._http)
        self._executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="baas-s3")

    # -- writing ----------------------------------------------------------------------------------

    async def upload(self, key: str, content_type: str) -> S3Upload:
        return S3Upload(self, check_key(key), content_type)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        check_key(key)
        await self.call(self.put_stream, key, io.BytesIO(data), len(data), content_type)

    def put_stream(
        self, key: str, data: io.BytesIO | _QueueReader, length: int, content_type: str
    ) -> None:
        """Write an object from a file-like object (a thread-side call)."""
        self.client.put_object(
            self.bucket,
            key,
            cast(BinaryIO, data),
            length,
            content_type=content_type,
            part_size=PART_SIZE,
            num_parallel_uploads=1,  # parts go one by one: memory holds about two
        )

    # -- reading ----------------------------------------------------------------------------------

    async def read(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        check_key(key)
        check_range(offset, length)
        if length == 0:  # S3 has no empty range: only say whether the object is there
            if await self.size(key) is None:
                raise ObjectMissing(key)
            return
        response = await self.call(self._get, key, offset, length or 0)
        if response is None:
            raise ObjectMissing(key)
        if response is _PAST_END:
            return
        body = cast(BaseHTTPResponse, response)
        finished = False
        try:
            while chunk := await self.call(body.read, CHUNK_SIZE):
                yield chunk
            finished = True
        finally:
            if not finished:  # drop the connection rather than drain the rest of the body
                body.close()
            body.release_conn()

    def _get(self, key: str, offset: int, length: int) -> BaseHTTPResponse | object | None:
        try:
            return self.client.get_object(self.bucket, key, offset=offset, length=length)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                return None
            if exc.code == "InvalidRange":  # the offset is at or past the end
                return _PAST_END
            raise

    async def size(self, key: str) -> int | None:
        check_key(key)
        return await self.call(self._size, key)

    def _size(self, key: str) -> int | None:
        try:
            found = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                return None
            raise
        return found.size

    # -- deleting ---------------------------------------------------------------------------------

    async def delete(self, keys: Sequence[str]) -> None:
        names = [check_key(key) for key in keys]
        if names:
            self._deleted(await self.call(self._remove, names))

    async def delete_prefix(self, prefix: str) -> None:
        check_prefix(prefix)
        self._deleted(await self.call(self._remove_prefix, prefix))

    def _remove_prefix(self, prefix: str) -> list[DeleteError]:
        listed = self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
        return self._remove(item.object_name for item in listed if item.object_name)

    def _remove(self, names: Iterable[str]) -> list[DeleteError]:
        objects = (DeleteObject(name) for name in names)
        errors = self.client.remove_objects(self.bucket, objects)  # lazy: list() sends it
        return [error for error in errors if error.code != "NoSuchKey"]

    def _deleted(self, errors: list[DeleteError]) -> None:
        if errors:
            log.warning("s3: %d objects not deleted, first: %s", len(errors), errors[0])
            raise StorageUnavailable(f"could not delete {len(errors)} objects ({errors[0].code})")

    # -- the rest ---------------------------------------------------------------------------------

    def presigned_get(self, key: str, expires_s: int, response_headers: dict[str, str]) -> str:
        """Computed locally: the region is configured, so minio asks the server nothing."""
        return self.client.presigned_get_object(
            self.bucket,
            check_key(key),
            expires=timedelta(seconds=expires_s),
            response_headers=dict(response_headers),
        )

    async def check(self) -> str:
        try:
            if not await self.call(self.client.bucket_exists, self.bucket):
                raise StorageUnavailable(f"bucket {self.bucket} does not exist")
            await round_trip(self)
        except StorageUnavailable as exc:
            raise StorageUnavailable(f"{self.endpoint}: {exc.reason}") from None
        return f"s3 bucket {self.bucket} at {self.endpoint}: write, read, delete OK"

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._http.clear()

    # -- the boundary -----------------------------------------------------------------------------

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in a thread; minio/urllib3/OS errors become StorageUnavailable."""
        loop = asyncio.get_running_loop()
        with self.translated():
            return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        """Errors raised inside, foreign to this project, become StorageUnavailable."""
        try:
            yield
        except _FOREIGN as exc:
            raise self.unavailable(exc) from None

    def unavailable(self, exc: BaseException) -> StorageUnavailable:
        log.warning("s3 %s bucket %s: %s", self.endpoint, self.bucket, exc)
        return StorageUnavailable(_reason(exc, self.bucket))


class S3Upload:
    """An object being streamed to S3 by a `put_object` thread that reads from a queue."""

    def __init__(self, backend: S3Backend, key: str, content_type: str) -> None:
        self._backend = backend
        self._key = key
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(QUEUED_CHUNKS)
        self._chunks: queue.Queue[bytes | object] = queue.Queue()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._committed = False
        reader = _QueueReader(self._chunks, self._taken)
        args = (key, reader, -1, content_type)
        # Its own thread, not the executor: it lives as long as the upload, and writers waiting
        # for it must never wait behind it for a pool thread.
        threading.Thread(target=self._run, args=args, name="baas-s3-upload", daemon=True).start()

    async def write(self, chunk: bytes) -> None:
        await self._raise_if_finished()
        await self._slots.acquire()  # released as the thread takes a chunk, or when it ends
        await self._raise_if_finished()
        self._chunks.put(chunk)

    async def commit(self) -> None:
        self._chunks.put(_EOF)
        with self._backend.translated():
            await asyncio.shield(self._done)
        self._committed = True

    async def abort(self) -> None:
        if self._committed:
            return
        self._chunks.put(_ABORT)
        try:
            await asyncio.shield(self._done)
        except Exception:  # it failed: minio has aborted its multipart upload
            return
        # It completed (a commit was cancelled while the thread finished): remove the object.
        try:
            await self._backend.delete([self._key])
        except StorageUnavailable:
            log.warning("s3: could not remove aborted upload %s", self._key)

    async def _raise_if_finished(self) -> None:
        if self._done.done():
            with self._backend.translated():
                await self._done  # its error, or:
            raise RuntimeError("write after the upload finished")

    def _run(self, *args: Any) -> None:
        error: BaseException | None = None
        try:
            self._backend.put_stream(*args)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._finish, error)

    def _finish(self, error: BaseException | None) -> None:
        if not self._done.done():
            if error is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(error)
        self._slots.release()  # wake a writer waiting for a slot: it will see the end

    def _taken(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._slots.release)


class _QueueReader:
    """The file-like object put_object reads from: queued chunks until EOF, or an abort."""

    def __init__(self, chunks: queue.Queue[bytes | object], taken: Callable[[], None]) -> None:
        self._chunks = chunks
        self._taken = taken
        self._pending = b""
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        """Exactly `size` bytes (all for -1) unless the object ends first, joined once: minio
        asks for a whole part at a time."""
        parts: list[bytes] = []
        have = 0
        chunk, self._pending = self._pending, b""
        while size < 0 or have < size:
            if not chunk:
                if self._eof:
                    break
                chunk = self._next()
                continue
            if 0 <= size < have + len(chunk):  # keep the rest for the next part
                chunk, self._pending = chunk[: size - have], chunk[size - have :]
            parts.append(chunk)
            have += len(chunk)
            chunk = b""
        return b"".join(parts)

    def _next(self) -> bytes:
        try:
            item = self._chunks.get(timeout=UPLOAD_IDLE_S)
        except queue.Empty:
            raise _Aborted("upload abandoned") from None
        if item is _ABORT:
            raise _Aborted("upload aborted")
        if item is _EOF:
            self._eof = True
            return b""
        self._taken()
        return cast(bytes, item)


def _pool(settings: Settings) -> urllib3.PoolManager:
    """Short timeouts, two retries with a small backoff, Retry-After not obeyed (no long sleeps)."""
    timeout = urllib3.Timeout(
        connect=min(settings.s3_timeout_s, MAX_CONNECT_TIMEOUT_S), read=settings.s3_timeout_s
    )
    retries = urllib3.Retry(
        total=2,
        connect=1,
        read=1,  # a pooled connection the server closed as it was reused
        status=2,
        other=0,
        backoff_factor=0.2,
        backoff_max=1.0,
        status_forcelist=(500, 502, 503, 504),
        raise_on_status=False,  # the last answer's S3 error says more than "too many retries"
        respect_retry_after_header=False,
    )
    return urllib3.PoolManager(
        timeout=timeout,
        retries=retries,
        maxsize=WORKERS,
        cert_reqs="CERT_REQUIRED",
        ca_certs=certifi.where(),
    )


def _client(settings: Settings, http: urllib3.PoolManager) -> Minio:
    url = urlsplit(settings.s3_endpoint)
    try:
        check_bucket_name(settings.s3_bucket)
        client = Minio(
            url.netloc,
            access_key=settings.s3_access_key or None,
            secret_key=settings.s3_secret_key or None,
            secure=url.scheme == "https",
            region=settings.s3_region,  # given, minio never asks the server for it
            http_client=http,
        )
    except ValueError as exc:
        raise StorageUnavailable(f"invalid S3 settings: {exc}") from None
    # minio picks virtual-host style for AWS hosts and path style elsewhere; the setting decides.
    # (these two minio methods lack annotations)
    if settings.s3_path_style:
        client.disable_virtual_style_endpoint()  # type: ignore[no-untyped-call]
    else:
        client.enable_virtual_style_endpoint()  # type: ignore[no-untyped-call]
    return client


def _reason(exc: BaseException, bucket: str) -> str:
    """A short, secret-free description of a minio/urllib3/OS error."""
    if isinstance(exc, S3Error):
        if exc.code == "NoSuchBucket":
            return f"bucket {bucket} does not exist"
        if exc.code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return f"access denied ({exc.code}): check the S3 access key, secret key and region"
        return f"the S3 service answered {exc.code}"
    if isinstance(exc, (ServerError, InvalidResponseError)):
        return "the S3 service answered with an unexpected error"
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    return _network_reason(exc)


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, NameResolutionError):
        return "cannot resolve the S3 service's host name"
    if isinstance(exc, NewConnectionError):  # (a subclass of ConnectTimeoutError)
        cause = exc.__cause__
        detail = cause.strerror if isinstance(cause, OSError) and cause.strerror else "failed"
        return f"cannot connect to the S3 service ({detail.lower()})"
    if isinstance(exc, ConnectTimeoutError):
        return "cannot connect to the S3 service (timed out)"
    if isinstance(exc, (ReadTimeoutError, TimeoutError)):
        return "the S3 service did not answer in time"
    if isinstance(exc, SSLError):
        return "TLS handshake with the S3 service failed"
    if isinstance(exc, (ProtocolError, http.client.HTTPException, ConnectionError)):
        return "the connection to the S3 service was lost"
    if isinstance(exc, _Aborted):
        return str(exc)
    return f"S3 request failed ({type(exc).__name__})"
