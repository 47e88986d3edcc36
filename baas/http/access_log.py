"""The access log: one line per request, batched off the request path.

A request appends one tuple to a bounded deque. Every 200 ms a task on the event loop formats what
accumulated into one block, and a writer thread makes the single `write` syscall (during which it
holds no GIL), so a slow log destination never blocks the loop. A Python thread that formats lines
itself would contend for the GIL with the event loop and halve throughput (measured). If the writer
falls behind by more than `MAX_PENDING` lines, the oldest are dropped rather than growing memory.

What a client sent (the method, the percent-decoded path) is written through `printable`: a CR or
LF could otherwise forge whole lines, and an ESC drive the terminal of whoever reads the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import sys
import threading
import time
from collections import deque

import orjson

MAX_PENDING = 100_000
FLUSH_EVERY_S = 0.2

_Entry = tuple[float, str, str, int, float, str]
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")  # C0, DEL, C1, and the escape character
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f\\]")


def printable(text: str, *, spaces: bool = False) -> str:
    r"""`text` with control characters written as `\xNN` (and `\` as `\\`, so the escape
    is unambiguous); with `spaces`, spaces too (one field of a space-separated line)."""
    return (_CONTROL_OR_SPACE if spaces else _CONTROL).sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "\\\\" if char == "\\" else f"\\x{ord(char):02x}"


class AccessLog:
    def __init__(self, fmt: str = "text", fd: int | None = None) -> None:
        self._json = fmt == "json"
        self._fd = fd
        self._pending: deque[_Entry] = deque(maxlen=MAX_PENDING)
        self._blocks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._task: asyncio.Task[None] | None = None
        self._writer: threading.Thread | None = None
        self._second = -1
        self._second_text = ""

    def record(self, method: str, path: str, status: int, ms: float, request_id: str) -> None:
        self._pending.append((time.time(), method, path, status, ms, request_id))

    def start(self) -> None:
        """Start flushing (call from the event loop)."""
        if self._task is None:
            self._writer = threading.Thread(target=self._write, name="baas-access-log", daemon=True)
            self._writer.start()
            self._task = asyncio.get_running_loop().create_task(self._flush_periodically())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush()
        if self._writer is not None:
            self._blocks.put(None)
            await asyncio.to_thread(self._writer.join, 2)
            self._writer = None

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            self.flush()

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        lines = [self._format(*pending.popleft()) for _ in range(len(pending))]
        block = "".join(lines).encode()
        if self._writer is not None:
            self._blocks.put(block)
        else:
            self._write_block(block)

    def _write(self) -> None:
        while (block := self._blocks.get()) is not None:
            self._write_block(block)

    def _write_block(self, block: bytes) -> None:
        fd = sys.stderr.fileno() if self._fd is None else self._fd
        view = memoryview(block)
        with contextlib.suppress(OSError):  # a closed or broken log destination loses lines only
            while view:
                view = view[os.write(fd, view) :]

    def _format(self, ts: float, method: str, path: str, status: int, ms: float, rid: str) -> str:
        second = int(ts)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        stamp = f"{self._second_text}.{int(ts * 1000) % 1000:03d}Z"
        if self._json:
            entry = {
                "ts": stamp,
                "level": "info",
                "logger": "baas.access",
                "method": printable(method),
                "path": printable(path),
                "status": status,
                "ms": round(ms, 2),
                "request_id": rid,
            }
            return orjson.dumps(entry).decode() + "\n"
        method, path = printable(method, spaces=True), printable(path, spaces=True)
        return f"{stamp} INFO    baas.access: {method} {path} {status} {ms:.1f}ms {rid}\n"
