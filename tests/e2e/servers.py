"""Real `baas serve` processes on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import SECRET_KEY, SERVICE_KEY

BAAS = str(Path(sys.executable).parent / "baas")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {SERVICE_KEY}"}, timeout=10
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                if httpx.get(f"{self.url}/api/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_server(
    tmp: Path,
    env: dict[str, str],
    *args: str,
    name: str = "server",
    command: tuple[str, ...] = (BAAS,),
) -> Server:
    """`baas serve` (or `command` given the same arguments) on a free port, its output in a file."""
    port = free_port()
    log = tmp / f"{name}-{port}.log"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BAAS_")},
        "BAAS_SERVICE_KEY": SERVICE_KEY,
        "BAAS_SECRET_KEY": SECRET_KEY,  # instances of one install share it
        "BAAS_PORT": str(port),
        "BAAS_DATA_DIR": str(tmp / "data"),
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "serve", *args], env=full_env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT
        )
    return Server(process, port, log)


@contextmanager
def running(
    tmp: Path,
    env: dict[str, str],
    *args: str,
    name: str = "server",
    command: tuple[str, ...] = (BAAS,),
) -> Iterator[Server]:
    server = start_server(tmp, env, *args, name=name, command=command)
    try:
        server.wait_ready()
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def eventually(check: object, timeout: float = 5.0) -> None:
    """Poll `check()` until it returns truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()  # type: ignore[operator]
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)


def access_entries(server: Server, request_id: str) -> list[str]:
    """The access log lines (text or JSON) of the request with this id."""
    return [
        line
        for line in server.output().splitlines()
        if "baas.access" in line and (line.endswith(f" {request_id}") or f'"{request_id}"' in line)
    ]


def tracebacks(server: Server) -> int:
    """Tracebacks in the server's log so far (text lines, or JSON entries with an exception)."""
    log = server.output()
    return log.count("Traceback (most recent call last)")
