"""Transactional auth emails: rendering, the durable outbox in `baas.mail`, and SMTP delivery.

A mail is rendered and stored in the caller's transaction (`Mailer.queue`), so it exists exactly
when the change that caused it (a sign-up, a reset token) committed. Without SMTP configured it
stays as status 'outbox': the development inbox an operator reads in the console. With SMTP it is
'pending', and a background pass sends it after the caller's commit (`wake`) and on a timer.

Delivery is at least once and never twice at the same time. A pass claims due rows with
`FOR UPDATE SKIP LOCKED` in one short statement that counts the attempt and leases the row (its
`next_attempt` moves past the time a send may take), then sends outside any transaction. A crash
mid-send leaves the lease to expire and the mail to be retried; another instance never claims a
leased row, and every later update names the attempt it belongs to, so a pass whose lease was
taken over leaves the row alone. Bodies are sealed at rest and dropped once delivered: their links
carry tokens. Logs name only the mail id, template and error class, never bodies or links.

Templates live in `templates/mail/` (`<name>.subject.txt`, `.txt`, `.html`, and `_layout.html`);
an operator's directory overrides them file by file. They render in jinja2's sandbox with
StrictUndefined, HTML autoescaped, and the subject flattened to one line (no header injection).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib
import jinja2
import orjson
from jinja2.sandbox import SandboxedEnvironment

from baas.auth.crypto import SecretBox
from baas.db.pool import Database, Executor, Record
from baas.errors import NotFound
from baas.loops import Loop
from baas.runtime_settings import RuntimeSettings

log = logging.getLogger("baas.auth.mail")

TEMPLATES: tuple[str, ...] = (
    "verify",
    "reset",
    "email_change",
    "email_changed",
    "already_registered",
    "password_changed",
)
MAX_SUBJECT = 200
MAX_ATTEMPTS = 5
BATCH = 20  # mails claimed per pass
POLL_S = 30.0  # a pass runs at least this often
BACKOFF_S = 30.0  # the n-th failure waits BACKOFF_S * 2^(n-1), jittered
MAX_BACKOFF_S = 3600.0
OUTBOX_MAX = 500  # most mails one outbox() call returns
MAX_ERROR = 500  # characters of an SMTP error kept on the row
_SEND_DEADLINE_FACTOR = 4  # one send may take this many smtp.timeout_s in all
_LEASE_MARGIN_S = 60.0
_SEAL_PURPOSE = "mail body"
_MIN_PAUSE_S = 0.05  # between passes while a backlog remains: never a hot loop


class MailTemplateError(RuntimeError):
    """A mail template (usually an operator's override) failed to render."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class Templates:
    """The mail templates: the package's, overridden file by file from `override_dir`."""

    def __init__(self, override_dir: Path | None) -> None:
        loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("baas.auth", "templates/mail")]
        if override_dir is not None:
            loaders.insert(0, jinja2.FileSystemLoader(override_dir))
        self._env = SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def render(self, name: str, context: Mapping[str, Any]) -> Rendered:
        if name not in TEMPLATES:
            raise ValueError(f"unknown mail template {name!r}")
        values = dict(context)
        subject = self._render(f"{name}.subject.txt", values)
        text = self._render(f"{name}.txt", values)
        html = self._render(f"{name}.html", values)
        return Rendered(one_line(subject, MAX_SUBJECT), text, html)

    def _render(self, filename: str, values: dict[str, Any]) -> str:
        try:
            return self._env.get_template(filename).render(values)
        except jinja2.TemplateError as exc:
            raise MailTemplateError(f"mail template {filename}: {exc}") from exc


def one_line(text: str, max_length: int) -> str:
    """Every run of whitespace (CR, LF, Unicode line separators too) as one space, trimmed."""
    return " ".join(text.split())[:max_length].rstrip()


@dataclass(frozen=True)
class _Claimed:
    """A mail this pass leased: `attempt` is the attempts count its claim set."""

    id: str
    recipient: str
    subject: str
    template: str
    body: bytes | None
    attempt: int


class DeliveryFailed(Exception):
    """An SMTP send failed; `reason` is what is kept on the row, `kind` what is logged."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class Mailer:
    """Queues auth mails in the caller's transaction and sends them in the background."""

    def __init__(
        self, db: Database, box: SecretBox, runtime: RuntimeSettings, templates: Templates
    ) -> None:
        self._db = db
        self._box = box
        self._runtime = runtime
        self._templates = templates
        self.loop = Loop("mailer", self._pass, every_s=POLL_S, log=log, first_now=True)

    async def queue(self, ex: Executor, name: str, to: str, context: Mapping[str, Any]) -> str:
        """Render `name` for `to` and store it in `ex`'s transaction; the mail's id."""
        if not to or any(c in to for c in "\r\n\x00"):
            raise ValueError("a mail recipient must be one address")
        rendered = self._templates.render(name, {**context, "app_name": self._runtime["app.name"]})
        body = orjson.dumps({"text": rendered.text, "html": rendered.html})
        status = "pending" if self._runtime["smtp.host"] else "outbox"
        mail_id: str = await ex.fetchval(
            "INSERT INTO baas.mail (recipient, subject, template, body, status) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            to,
            rendered.subject,
            name,
            self._box.seal(body, _SEAL_PURPOSE),
            status,
        )
        return mail_id

    def wake(self) -> None:
        """Ask for a pass soon (call once the transaction that queued mail has committed)."""
        self.loop.wake()

    async def start(self) -> None:
        self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    async def _pass(self) -> float:
        await self.send_pending()
        return await self._seconds_until_due()

    async def _seconds_until_due(self) -> float:
        """Until the next pending mail is due, at most POLL_S (0 while a backlog remains)."""
        if not self._runtime["smtp.host"]:
            return POLL_S
        wait = await self._db.fetchval(
            "SELECT extract(epoch FROM min(next_attempt) - now()) FROM baas.mail "
            "WHERE status = 'pending'"
        )
        return POLL_S if wait is None else min(POLL_S, max(_MIN_PAUSE_S, float(wait)))

    async def send_pending(self) -> int:
        """One pass: claim due mails, send each; how many were sent."""
        if not self._runtime["smtp.host"]:
            return 0  # SMTP was switched off: pending mail waits for it to come back
        sent = 0
        for mail in await self._claim():
            if await self._renew_lease(mail):
                sent += await self._deliver(mail)
        return sent

    def _lease_s(self) -> float:
        return self._send_deadline_s() + _LEASE_MARGIN_S

    def _send_deadline_s(self) -> float:
        return float(self._runtime["smtp.timeout_s"] * _SEND_DEADLINE_FACTOR)

    async def _claim(self) -> list[_Claimed]:
        rows = await self._db.fetch(_CLAIM, self._lease_s(), BATCH)
        claimed = [
            _Claimed(
                r["id"],
                r["recipient"],
                r["subject"],
                r["template"],
                None if r["body"] is None else bytes(r["body"]),
                r["attempts"],
            )
            for r in rows
        ]
        return sorted(claimed, key=lambda m: m.id)  # uuid7: oldest first

    async def _renew_lease(self, mail: _Claimed) -> bool:
        """Lease the mail afresh just before sending it: earlier sends of this pass took time.
        False when another pass claimed it meanwhile (our lease ran out)."""
        renewed = await self._db.fetchval(
            "UPDATE baas.mail SET next_attempt = now() + make_interval(secs => $3) "
            "WHERE id = $1 AND attempts = $2 AND status = 'pending' RETURNING true",
            mail.id,
            mail.attempt,
            self._lease_s(),
        )
        return renewed is not None

    async def _deliver(self, mail: _Claimed) -> int:
        """Send one claimed mail and record the outcome; 1 when it was sent."""
        try:
            await self._send(mail)
        except DeliveryFailed as exc:
            await self._record_failure(mail, exc)
            return 0
        await self._db.execute(
            "UPDATE baas.mail SET status = 'sent', sent = now(), body = NULL, error = NULL "
            "WHERE id = $1 AND attempts = $2",
            mail.id,
            mail.attempt,
        )
        log.info("mail %s (%s) sent", mail.id, mail.template)
        return 1

    async def _record_failure(self, mail: _Claimed, exc: DeliveryFailed) -> None:
        final = mail.attempt >= MAX_ATTEMPTS
        await self._db.execute(
            "UPDATE baas.mail SET status = $3, error = $4, "
            "next_attempt = now() + make_interval(secs => $5) "
            "WHERE id = $1 AND attempts = $2",
            mail.id,
            mail.attempt,
            "failed" if final else "pending",
            exc.reason,
            backoff_s(mail.attempt),
        )
        log.warning(
            "mail %s (%s) attempt %d failed: %s%s",
            mail.id,
            mail.template,
            mail.attempt,
            exc.kind,
            "; giving up" if final else "",
        )

    async def _send(self, mail: _Claimed) -> None:
        """Compose and send over SMTP; every failure leaves as DeliveryFailed."""
        try:
            message = self._compose(mail)
            await self._smtp_send(message, mail.recipient)
        except DeliveryFailed:
            raise
        except Exception as exc:  # one bad mail must not stop the others: recorded on its row
            raise DeliveryFailed(_describe(exc), type(exc).__name__) from exc

    def _compose(self, mail: _Claimed) -> EmailMessage:
        if mail.body is None:
            raise DeliveryFailed("the body is gone", "MissingBody")
        body = orjson.loads(self._box.open(mail.body, _SEAL_PURPOSE))
        sender = self._runtime["mail.from"]
        message = EmailMessage()
        message["From"] = sender
        message["To"] = mail.recipient
        message["Subject"] = mail.subject
        message["Date"] = formatdate(usegmt=True)
        # Stable across retries: a receiver can drop the duplicate of an at-least-once resend.
        message["Message-ID"] = f"<{mail.id}@{_domain(sender)}>"
        message.set_content(body["text"])
        message.add_alternative(body["html"], subtype="html")
        return message

    async def _smtp_send(self, message: EmailMessage, recipient: str) -> None:
        runtime = self._runtime
        security = runtime["smtp.security"]
        username = runtime["smtp.username"] or None
        async with asyncio.timeout(self._send_deadline_s()):
            await aiosmtplib.send(
                message,
                sender=parseaddr(runtime["mail.from"])[1] or None,
                recipients=[recipient],
                hostname=runtime["smtp.host"],
                port=runtime["smtp.port"],
                username=username,
                password=runtime["smtp.password"] if username else None,
                use_tls=security == "tls",
                start_tls=security == "starttls",
                timeout=runtime["smtp.timeout_s"],
            )


def backoff_s(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 30 s doubling, jittered, <= 1 h."""
    base = BACKOFF_S * 2 ** min(attempts - 1, 16)
    return float(min(MAX_BACKOFF_S, base * random.uniform(0.8, 1.2)))


def _domain(address: str) -> str:
    domain = parseaddr(address)[1].rpartition("@")[2]
    return domain or "localhost"


def _describe(exc: Exception) -> str:
    """The error kept on the row: the class and the server's reply (never the message)."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        detail = f"{exc.code} {exc.message}"
    elif isinstance(exc, TimeoutError) and not str(exc):
        detail = "timed out"
    else:
        detail = str(exc)
    return f"{type(exc).__name__}: {detail}"[:MAX_ERROR]


# The claim is one statement (its own short transaction): the locked rows are counted as an
# attempt and leased before any of them is sent. MATERIALIZED keeps the locking subquery from
# being inlined and evaluated more than once.
_CLAIM = """
WITH due AS MATERIALIZED (
  SELECT id FROM baas.mail
   WHERE status = 'pending' AND next_attempt <= now()
   ORDER BY next_attempt
   LIMIT $2
   FOR UPDATE SKIP LOCKED
)
UPDATE baas.mail m
   SET attempts = m.attempts + 1, next_attempt = now() + make_interval(secs => $1)
  FROM due
 WHERE m.id = due.id
RETURNING m.id, m.recipient, m.subject, m.template, m.body, m.attempts
"""


async def outbox(
    db: Database, box: SecretBox, *, limit: int = 50, recipient: str | None = None
) -> list[dict[str, Any]]:
    """Recent mails, newest first, with their bodies opened (None once delivered)."""
    limit = max(1, min(limit, OUTBOX_MAX))
    rows = await db.fetch(_OUTBOX, limit, recipient)
    return [_entry(box, r) for r in rows]


async def message(db: Database, box: SecretBox, mail_id: str) -> dict[str, Any]:
    """One mail, shaped as in `outbox`; NotFound (mail_not_found) if there is none."""
    try:
        uuid.UUID(mail_id)
    except ValueError:
        raise NotFound("no such mail", code="mail_not_found") from None
    row = await db.fetchrow(_MESSAGE, mail_id)
    if row is None:
        raise NotFound("no such mail", code="mail_not_found")
    return _entry(box, row)


_OUTBOX = """
SELECT id, created, recipient, subject, template, status, attempts, sent, error, body
  FROM baas.mail
 WHERE $2::text IS NULL OR lower(recipient) = lower($2)
 ORDER BY created DESC, id DESC
 LIMIT $1
"""
_MESSAGE = """
SELECT id, created, recipient, subject, template, status, attempts, sent, error, body
  FROM baas.mail
 WHERE id = $1
"""


def _entry(box: SecretBox, row: Record) -> dict[str, Any]:
    body = (
        orjson.loads(box.open(bytes(row["body"]), _SEAL_PURPOSE)) if row["body"] is not None else {}
    )
    return {
        "id": row["id"],
        "created": row["created"],
        "recipient": row["recipient"],
        "subject": row["subject"],
        "template": row["template"],
        "status": row["status"],
        "attempts": row["attempts"],
        "sent": row["sent"],
        "error": row["error"],
        "text": body.get("text"),
        "html": body.get("html"),
    }
