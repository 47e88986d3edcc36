"""`baas serve` says it is listening only once its port accepts connections, with one worker or
several (the socket is bound before the app starts, and listened on only after)."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import httpx
import pytest

from tests.e2e.servers import Server, eventually, start_server

LISTENING = "baas listening on "


def _listening_line(server: Server) -> str | None:
    """The "listening" line once the server has logged it (a failed start fails the test)."""
    if server.process.poll() is not None:
        raise AssertionError(f"server exited with {server.process.returncode}:\n{server.output()}")
    lines = [line for line in server.output().splitlines() if LISTENING in line]
    return lines[0] if lines else None


@pytest.mark.parametrize("workers", ["1", "2"])
def test_listening_is_said_once_a_connection_succeeds(
    database_url: str, tmp_path: Path, workers: str
) -> None:
    server = start_server(tmp_path, {"BAAS_DATABASE_URL": database_url}, "--workers", workers)
    try:
        eventually(lambda: _listening_line(server), timeout=60)
        # at once, without a retry: the line promised the port was ready
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
        assert httpx.get(f"{server.url}/api/health/live", timeout=10).status_code == 200

        line = _listening_line(server)
        assert line is not None
        assert f"{LISTENING}http://127.0.0.1:{server.port} " in line
        assert server.output().count(LISTENING) == 1
        assert "Uvicorn running on" not in server.output()  # said at the bind, too early
        assert server.stop(signal.SIGINT) == 0
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def test_a_taken_port_is_never_said_to_be_listening(database_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = start_server(tmp_path, {"BAAS_DATABASE_URL": database_url, "BAAS_PORT": str(port)})
        try:
            assert server.process.wait(timeout=60) != 0
        finally:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()
    assert "Address already in use" in server.output()
    assert LISTENING not in server.output()
