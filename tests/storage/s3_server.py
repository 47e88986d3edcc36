"""Local S3 servers for the storage tests: moto's S3 speaking the real protocol over HTTP, in a
thread of the test process or, where the test measures its own memory, in a process of its own."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import minio
from moto.server import ThreadedMotoServer

MOTO_SERVER = str(Path(sys.executable).parent / "moto_server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoThread:
    """moto's S3 on 127.0.0.1 in a thread: `url` while running, `stop()` is an outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._running = False

    def start(self) -> MotoThread:
        # werkzeug logs every request to stderr unless its logger is told otherwise.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        self._running = True
        return self

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._server.stop()


@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """moto's S3 in a child process (its memory is not the test's); yields its URL."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    process = subprocess.Popen(
        [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("moto_server exited")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError("moto_server did not start")


def make_bucket(url: str, name: str) -> None:
    """Create a bucket with a plain minio client (the server's own side of the setup)."""
    host = url.removeprefix("http://")
    client = minio.Minio(
        host, access_key="test", secret_key="test", secure=False, region="us-east-1"
    )
    client.make_bucket(name)
