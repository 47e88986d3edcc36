"""The local file storage backend: each object is a file under one directory.

Uploads stream into `<root>/.tmp/` and are renamed into place on commit, so an object appears
complete or not at all. Disk I/O runs in threads, one call per chunk, so memory stays bounded by
the chunk size whatever the file size. OS errors (disk full, permissions) become
StorageUnavailable here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import shutil
import stat
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

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

TEMP_DIR = ".tmp"
STALE_TEMP_S = 24 * 3600  # temp files this old were left by a crash: removed on start-up
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


def storage_root(settings: Settings) -> Path:
    """`storage_dir`, or `<data_dir>/storage` when it is not set."""
    return (
        settings.storage_dir if settings.storage_dir != Path("") else settings.data_dir / "storage"
    )


class LocalUpload:
    """An object being written to a temp file, renamed to its key on commit."""

    def __init__(self, backend: LocalBackend, key: str, temp: Path, file: BinaryIO) -> None:
        self._backend = backend
        self._key = key
        self._temp = temp
        self._file = file
        self._placing: asyncio.Future[None] | None = None  # the rename, once commit began
        self._committed = False

    async def write(self, chunk: bytes) -> None:
        with self._backend.translated("write"):
            await asyncio.to_thread(self._file.write, chunk)

    async def commit(self) -> None:
        self._placing = asyncio.ensure_future(asyncio.to_thread(self._finish))
        with self._backend.translated("write"):
            await asyncio.shield(self._placing)
        self._committed = True

    async def abort(self) -> None:
        if self._committed:
            return
        placed = False
        if self._placing is not None:  # a commit was cancelled: its rename may still happen
            with contextlib.suppress(Exception):
                await asyncio.shield(self._placing)
                placed = True
        await asyncio.to_thread(self._discard, placed)

    def _finish(self) -> None:
        self._file.close()
        self._backend.place(self._temp, self._key)

    def _discard(self, placed: bool) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self._temp.unlink(missing_ok=True)
        if placed:
            with contextlib.suppress(OSError):
                (self._backend.root / self._key).unlink(missing_ok=True)


class LocalBackend:
    """Objects as files under `storage_root(settings)`, created on first use."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.root = storage_root(settings)
        self._ready = False

    # -- writing ----------------------------------------------------------------------------------

    async def upload(self, key: str, content_type: str) -> LocalUpload:
        self._path(key)
        with self.translated("write"):
            temp, file = await asyncio.to_thread(self._open_temp)
        return LocalUpload(self, key, temp, file)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self._path(key)
        with self.translated("write"):
            await asyncio.to_thread(self._put, key, data)

    def _put(self, key: str, data: bytes) -> None:
        temp, file = self._open_temp()
        try:
            with file:
                file.write(data)
            self.place(temp, key)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def _open_temp(self) -> tuple[Path, BinaryIO]:
        self._prepare()
        temp = self.root / TEMP_DIR / f"{secrets.token_hex(12)}.part"
        return temp, temp.open("xb")

    def place(self, temp: Path, key: str) -> None:
        """Rename a finished temp file to its key (a thread-side call)."""
        target = self.root / key
        for attempt in (1, 2):  # a concurrent delete may prune the parent between the two calls
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(temp, target)
                return
            except FileNotFoundError:
                if attempt == 2 or not temp.exists():
                    raise

    # -- reading ----------------------------------------------------------------------------------

    async def read(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._path(key)
        check_range(offset, length)
        try:
            file = await asyncio.to_thread(_open_at, path, offset)
        except _MISSING:
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise self._unavailable("read", exc) from None
        with file, self.translated("read"):
            remaining = length
            while remaining is None or remaining > 0:
                size = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
                chunk = await asyncio.to_thread(file.read, size)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    async def size(self, key: str) -> int | None:
        path = self._path(key)
        with self.translated("read"):
            return await asyncio.to_thread(_file_size, path)

    # -- deleting ---------------------------------------------------------------------------------

    async def delete(self, keys: Sequence[str]) -> None:
        paths = [self._path(key) for key in keys]
        with self.translated("delete"):
            await asyncio.to_thread(self._delete, paths)

    def _delete(self, paths: list[Path]) -> None:
        for path in paths:
            with contextlib.suppress(*_MISSING):
                path.unlink()
            self._prune(path.parent)

    async def delete_prefix(self, prefix: str) -> None:
        directory = self._path(check_prefix(prefix)[:-1])
        with self.translated("delete"):
            await asyncio.to_thread(self._delete_tree, directory)

    def _delete_tree(self, directory: Path) -> None:
        with contextlib.suppress(*_MISSING):
            shutil.rmtree(directory)
        self._prune(directory.parent)

    def _prune(self, directory: Path) -> None:
        """Remove empty directories from `directory` up to (not including) the root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:  # not empty (or gone): stop climbing
                return
            directory = directory.parent

    # -- the rest ---------------------------------------------------------------------------------

    def presigned_get(self, key: str, expires_s: int, response_headers: dict[str, str]) -> None:
        self._path(key)
        return None

    async def check(self) -> str:
        try:
            await round_trip(self)
        except StorageUnavailable as exc:
            raise StorageUnavailable(f"{self.root}: {exc.reason}") from None
        return f"local directory {self.root.resolve()}: write, read, delete OK"

    async def close(self) -> None:
        return None

    # -- internals --------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Create the root on first use and remove temp files a crash left behind."""
        if self._ready:
            return
        temp_dir = self.root / TEMP_DIR
        temp_dir.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_TEMP_S
        for leftover in temp_dir.iterdir():
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
        self._ready = True

    def _path(self, key: str) -> Path:
        """The file of a valid key (ValueError for an invalid one or one under the temp dir)."""
        if check_key(key).split("/", 1)[0] == TEMP_DIR:
            raise ValueError(f"invalid storage key {key!r}: {TEMP_DIR}/ is reserved")
        return self.root / key

    @contextlib.contextmanager
    def translated(self, action: str) -> Iterator[None]:
        """OS errors raised inside become StorageUnavailable."""
        try:
            yield
        except OSError as exc:
            raise self._unavailable(action, exc) from None

    def _unavailable(self, action: str, exc: OSError) -> StorageUnavailable:
        log.warning("local storage: cannot %s under %s: %s", action, self.root, exc)
        reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or type(exc).__name__)
        return StorageUnavailable(f"cannot {action} files ({reason.lower()})")


def _open_at(path: Path, offset: int) -> BinaryIO:
    file = path.open("rb")
    if offset:
        file.seek(offset)
    return file


def _file_size(path: Path) -> int | None:
    try:
        status = path.stat()
    except _MISSING:
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None
