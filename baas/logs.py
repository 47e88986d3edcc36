"""Logging: text or JSON lines on stderr, written by a background thread off the request path.

Records are queued as they are (no formatting on the event loop) and formatted and written by a
`QueueListener` thread; synchronous log writes would cost the request path a fifth of its speed.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from typing import Any

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class _Queued(logging.handlers.QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Formatting happens in the listener thread; the record's args are plain values.
        return record


_listener: logging.handlers.QueueListener | None = None


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Route every logger (ours and uvicorn's) through one queue to stderr."""
    global _listener
    _stop()
    stream = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        stream.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        formatter.converter = __import__("time").gmtime
        stream.setFormatter(formatter)
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(q, stream, respect_handler_level=False)
    _listener.start()
    root = logging.getLogger()
    root.handlers = [_Queued(q)]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # baas.access replaces it


def _stop() -> None:
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


atexit.register(_stop)
