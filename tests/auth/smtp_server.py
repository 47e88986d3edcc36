"""A real SMTP server on 127.0.0.1 (aiosmtpd, in its own thread) for tests that send mail.

It keeps every message it accepts, parsed; can require AUTH with one username and password (over
plain SMTP: there is no TLS here); and can be told to refuse messages with a reply of our choosing
(a temporary "451" by default) to exercise retries.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

TRY_LATER = "451 4.3.0 try later"


@dataclass(frozen=True)
class Received:
    """One accepted message: the envelope and the parsed message."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str | None  # the AUTH user name it was sent under


class LocalSmtp:
    """Start with `with LocalSmtp() as smtp:`; `smtp.port`, `smtp.received`, `smtp.refuse()`."""

    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        self.username = username
        self.password = password
        self.received: list[Received] = []
        self.refusal: str | None = None
        self._lock = threading.Lock()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))  # bound before the thread starts: no port race
        self.port: int = self._socket.getsockname()[1]
        kwargs: dict[str, Any] = {}
        if username is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = _BoundController(_Handler(self), self._socket, **kwargs)

    def __enter__(self) -> LocalSmtp:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def refuse(self, reply: str = TRY_LATER) -> None:
        """Answer every message with `reply` until `accept()`."""
        self.refusal = reply

    def accept(self) -> None:
        self.refusal = None

    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [r.message for r in self.received]

    def _keep(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.username is not None
            and self.password is not None
            and auth_data.login == self.username.encode()
            and auth_data.password == self.password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


class _Handler:
    def __init__(self, smtp: LocalSmtp) -> None:
        self.smtp = smtp

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        # Checked here rather than with aiosmtpd's auth_required, which warns without TLS.
        if self.smtp.username is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.smtp.refusal is not None:
            return self.smtp.refusal
        content = envelope.original_content or b""  # the bytes as sent
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.smtp._keep(Received(str(envelope.mail_from), list(envelope.rcpt_tos), message, login))
        return "250 OK"


class _BoundController(Controller):
    """aiosmtpd's controller serving on a socket bound beforehand (so the port is known and
    nobody else can take it between choosing and binding)."""

    def __init__(self, handler: Any, sock: socket.socket, **smtp_kwargs: Any) -> None:
        self._sock = sock
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], **smtp_kwargs)

    def _create_server(self) -> Any:
        coroutine: Any = self.loop.create_server(self._factory_invoker, sock=self._sock)
        return coroutine
