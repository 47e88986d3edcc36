"""Local servers for the outbound client's tests: a bare listening socket that tells whether
anything connected to it (`Listener`), and a scripted HTTP/1.1 server on any loopback address,
with TLS for the names its certificate carries (`Scripted`, `issue_certificate`).

    with Listener("127.0.0.1") as trap:          # a fetch that must not happen
        ...fetch...
        assert trap.connections() == 0

    with Scripted("127.0.0.2", lambda request: Answer(302, {"Location": url})) as server:
        ...fetch server.url("/x")...
        assert server.requests[0].host == "127.0.0.2:..."
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class Listener:
    """A socket that listens and never accepts: every connection made to it waits in its
    backlog, so `connections()` counts them without racing the client."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.bind((host, port))
            self.sock.listen(64)
        except OSError:
            self.sock.close()
            raise
        self.port: int = self.sock.getsockname()[1]
        self._accepted: list[socket.socket] = []

    def connections(self) -> int:
        self.sock.setblocking(False)
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return len(self._accepted)
            self._accepted.append(conn)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.connections()
        for conn in self._accepted:
            conn.close()
        self.sock.close()


@dataclass
class Seen:
    """A request as the server saw it."""

    method: str
    path: str
    host: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunked: bool = False  # no Content-Length: the body goes in chunks
    drip_s: float = 0.0  # seconds between chunks


Script = Callable[[Seen], Answer]


class Scripted:
    """An HTTP server on `host` (any loopback address) answering each request with
    `script(request)`; with `tls`, its certificate is issued by `tls` for `tls.names`."""

    def __init__(self, host: str, script: Script, *, port: int = 0, tls: LocalCa | None = None):
        self.host = host
        self.script = script
        self.requests: list[Seen] = []
        self.server_names: list[str | None] = []  # the TLS SNI of each handshake
        self._server = _Server((host, port), _Handler, self)
        self.port: int = self._server.server_address[1]
        self.scheme = "http"
        if tls is not None:
            self.scheme = "https"
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_file, tls.key_file)
            context.sni_callback = self._note_sni
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,))

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def _note_sni(self, _sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: Any) -> None:
        self.server_names.append(name)

    def __enter__(self) -> Scripted:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, scripted: Scripted) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.scripted = scripted
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-answer (a size cap, a timeout) is what tests expect


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        scripted = self.server.scripted
        length = int(self.headers.get("Content-Length") or 0)
        seen = Seen(
            self.command,
            self.path,
            self.headers.get("Host", ""),
            {k.lower(): v for k, v in self.headers.items()},
            self.rfile.read(length),
        )
        scripted.requests.append(seen)
        answer = scripted.script(seen)
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if not answer.chunked:
            self.wfile.write(answer.body)
            return
        for start in range(0, len(answer.body), 1024):
            chunk = answer.body[start : start + 1024]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            time.sleep(answer.drip_s)  # the slow server the test is about, not a wait
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class LocalCa:
    """A CA and a server certificate it issued for `names` (files in `directory`)."""

    names: tuple[str, ...]
    ca_file: Path
    cert_file: Path
    key_file: Path


def issue_certificate(directory: Path, *names: str) -> LocalCa:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "baas test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = LocalCa(names, directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files
