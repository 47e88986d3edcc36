"""Auth mail: templates render safely, mail is queued in the caller's transaction, and the sender
delivers it to a real SMTP server exactly once, retrying and finally giving up on failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from baas.auth.crypto import SecretBox
from baas.auth.mail import (
    MAX_ATTEMPTS,
    MAX_BACKOFF_S,
    MAX_SUBJECT,
    TEMPLATES,
    Mailer,
    MailTemplateError,
    Templates,
    backoff_s,
    message,
    outbox,
)
from baas.db.pool import Database, PoolOptions
from baas.errors import NotFound
from baas.runtime_settings import RuntimeSettings
from tests.auth.smtp_server import LocalSmtp

BOX = SecretBox(b"mail-tests-0123456789-abcdefghijklmnopqrstuvwxyz")
LINK = "https://app.example.com/auth/verify?token=tok_0123456789"
VERIFY = {"link": LINK, "email": "ann@example.com", "expires_in": "24 hours"}
CONTEXTS: dict[str, dict[str, Any]] = {
    "verify": VERIFY,
    "reset": {"link": LINK, "email": "ann@example.com", "expires_in": "1 hour"},
    "email_change": {"link": LINK, "new_email": "ann@new.example", "expires_in": "24 hours"},
    "email_changed": {"old_email": "ann@example.com", "new_email": "ann@new.example"},
    "already_registered": {
        "email": "ann@example.com",
        "sign_in_link": "https://app.example.com/sign-in",
        "reset_link": LINK,
    },
    "password_changed": {"email": "ann@example.com"},
}


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, PoolOptions(min_size=1, max_size=4))
    yield database
    await database.close()


@pytest.fixture
def smtp() -> Iterator[LocalSmtp]:
    with LocalSmtp() as server:
        yield server


def runtime(smtp: LocalSmtp | None = None, **values: Any) -> RuntimeSettings:
    settings: dict[str, Any] = {"app.name": "Acme", "mail.from": "Acme <noreply@acme.test>"}
    if smtp is not None:
        settings |= {
            "smtp.host": "127.0.0.1",
            "smtp.port": smtp.port,
            "smtp.security": "none",
            "smtp.timeout_s": 5,
        }
    return RuntimeSettings({**settings, **values})


def mailer(db: Database, settings: RuntimeSettings) -> Mailer:
    return Mailer(db, BOX, settings, Templates(None))


async def row(db: Database, mail_id: str) -> dict[str, Any]:
    record = await db.fetchrow(
        "SELECT status, attempts, error, sent, body IS NULL AS body_gone, "
        "next_attempt > now() AS later FROM baas.mail WHERE id = $1",
        mail_id,
    )
    assert record is not None
    return dict(record)


async def make_due(db: Database) -> None:
    await db.execute("UPDATE baas.mail SET next_attempt = now()")


def parts(msg: EmailMessage) -> tuple[str, str]:
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


# Rendering


def test_html_is_autoescaped_and_text_is_not() -> None:
    script = "<script>alert(1)</script>"
    rendered = Templates(None).render("verify", {**VERIFY, "email": script, "app_name": "Acme"})
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert script not in rendered.html
    assert script in rendered.text


def test_subject_is_one_line_and_bounded() -> None:
    templates = Templates(None)
    evil = templates.render("verify", {**VERIFY, "app_name": "Acme\r\nBcc: eve@evil.test\n"})
    assert evil.subject == "Confirm your email for Acme Bcc: eve@evil.test"
    long = templates.render("verify", {**VERIFY, "app_name": "A" * 500})
    assert len(long.subject) == MAX_SUBJECT


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_renders_its_context(name: str) -> None:
    context = CONTEXTS[name]
    rendered = Templates(None).render(name, {**context, "app_name": "Acme"})
    assert "Acme" in rendered.subject
    assert rendered.html.startswith("<!doctype html>")
    for value in context.values():
        assert value in rendered.text
        assert value in rendered.html


def test_already_registered_leaves_out_empty_links() -> None:
    context = {"email": "ann@example.com", "sign_in_link": "", "reset_link": "", "app_name": "A"}
    rendered = Templates(None).render("already_registered", context)
    assert "href" not in rendered.html.split("<h1", 1)[1]
    assert "Sign in" not in rendered.html
    assert "open this link" not in rendered.text


def test_a_missing_context_value_is_an_error() -> None:
    with pytest.raises(MailTemplateError, match="link"):
        Templates(None).render("verify", {"email": "ann@example.com", "app_name": "Acme"})


def test_an_unknown_template_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown mail template"):
        Templates(None).render("../verify", {})


def test_an_operator_file_overrides_only_itself(tmp_path: Path) -> None:
    (tmp_path / "verify.subject.txt").write_text("Welcome to {{ app_name }}, {{ email }}!\n")
    rendered = Templates(tmp_path).render("verify", {**VERIFY, "app_name": "Acme"})
    assert rendered.subject == "Welcome to Acme, ann@example.com!"
    assert LINK in rendered.text  # the package's text and html still serve
    assert "Confirm email" in rendered.html


def test_operator_templates_are_sandboxed(tmp_path: Path) -> None:
    (tmp_path / "verify.txt").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(MailTemplateError):
        Templates(tmp_path).render("verify", {**VERIFY, "app_name": "Acme"})


def test_backoff_doubles_with_jitter_up_to_an_hour() -> None:
    assert 24 <= backoff_s(1) <= 36
    assert 96 <= backoff_s(3) <= 144
    assert all(backoff_s(n) <= MAX_BACKOFF_S for n in range(1, 40))


# The outbox


async def test_without_smtp_mail_stays_in_the_outbox(db: Database) -> None:
    sender = mailer(db, runtime())
    async with db.transaction() as tx:
        mail_id = await sender.queue(tx, "verify", "ann@example.com", VERIFY)
    await sender.queue(db, "password_changed", "bob@example.com", {"email": "bob@example.com"})
    assert await sender.send_pending() == 0

    mails = await outbox(db, BOX)
    assert [m["template"] for m in mails] == ["password_changed", "verify"]  # newest first
    one = await message(db, BOX, mail_id)
    assert one == mails[1]
    assert one["status"] == "outbox"
    assert one["recipient"] == "ann@example.com"
    assert one["subject"] == "Confirm your email for Acme"
    assert LINK in one["text"]
    assert LINK in one["html"]
    assert (one["attempts"], one["sent"], one["error"]) == (0, None, None)
    assert [m["id"] for m in await outbox(db, BOX, recipient="ANN@example.com")] == [mail_id]
    assert len(await outbox(db, BOX, limit=1)) == 1


@pytest.mark.parametrize("mail_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_an_unknown_mail_is_not_found(db: Database, mail_id: str) -> None:
    with pytest.raises(NotFound) as raised:
        await message(db, BOX, mail_id)
    assert raised.value.code == "mail_not_found"


async def test_mail_queued_in_a_rolled_back_transaction_is_gone(
    db: Database, smtp: LocalSmtp
) -> None:
    sender = mailer(db, runtime(smtp))

    async def failing_sign_up() -> None:
        async with db.transaction() as tx:
            await sender.queue(tx, "verify", "ann@example.com", VERIFY)
            raise RuntimeError("sign-up failed")

    with pytest.raises(RuntimeError, match="sign-up failed"):
        await failing_sign_up()
    assert await db.fetchval("SELECT count(*) FROM baas.mail") == 0
    assert await sender.send_pending() == 0
    assert smtp.received == []


async def test_a_recipient_with_a_line_break_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="one address"):
        await mailer(db, runtime()).queue(db, "verify", "ann@example.com\r\nBcc: x@y", VERIFY)


# Delivery


async def test_queued_mail_is_delivered_and_its_body_dropped(db: Database, smtp: LocalSmtp) -> None:
    sender = mailer(db, runtime(smtp))
    async with db.transaction() as tx:
        mail_id = await sender.queue(tx, "verify", "ann@example.com", VERIFY)
    assert (await row(db, mail_id))["status"] == "pending"

    assert await sender.send_pending() == 1

    [received] = smtp.received
    assert received.sender == "noreply@acme.test"
    assert received.recipients == ["ann@example.com"]
    msg = received.message
    assert msg["From"] == "Acme <noreply@acme.test>"
    assert msg["To"] == "ann@example.com"
    assert msg["Subject"] == "Confirm your email for Acme"
    assert msg["Message-ID"] == f"<{mail_id}@acme.test>"
    assert msg["Date"]
    text, html = parts(msg)
    assert LINK in text
    assert LINK in html
    state = await row(db, mail_id)
    assert (state["status"], state["attempts"], state["body_gone"]) == ("sent", 1, True)
    assert state["sent"] is not None
    delivered = await message(db, BOX, mail_id)
    assert (delivered["text"], delivered["html"]) == (None, None)
    assert await sender.send_pending() == 0  # nothing is sent twice


async def test_smtp_auth_with_username_and_password(db: Database) -> None:
    with LocalSmtp(username="mailer", password="s3cret-pw") as smtp:
        settings = runtime(smtp, **{"smtp.username": "mailer", "smtp.password": "s3cret-pw"})
        sender = mailer(db, settings)
        await sender.queue(db, "reset", "ann@example.com", CONTEXTS["reset"])
        assert await sender.send_pending() == 1
    [received] = smtp.received
    assert received.login == "mailer"


async def test_a_wrong_smtp_password_is_a_failed_attempt(db: Database) -> None:
    with LocalSmtp(username="mailer", password="s3cret-pw") as smtp:
        settings = runtime(smtp, **{"smtp.username": "mailer", "smtp.password": "wrong"})
        sender = mailer(db, settings)
        mail_id = await sender.queue(db, "reset", "ann@example.com", CONTEXTS["reset"])
        assert await sender.send_pending() == 0
    state = await row(db, mail_id)
    assert (state["status"], state["attempts"]) == ("pending", 1)
    assert state["error"].startswith("SMTPAuthenticationError: 535")
    assert smtp.received == []


async def test_a_refused_mail_is_retried_later(db: Database, smtp: LocalSmtp) -> None:
    sender = mailer(db, runtime(smtp))
    mail_id = await sender.queue(db, "verify", "ann@example.com", VERIFY)
    smtp.refuse()

    assert await sender.send_pending() == 0
    state = await row(db, mail_id)
    assert (state["status"], state["attempts"], state["later"]) == ("pending", 1, True)
    assert state["error"] == "SMTPDataError: 451 4.3.0 try later"
    assert state["body_gone"] is False
    assert await sender.send_pending() == 0  # not due yet: no attempt
    assert (await row(db, mail_id))["attempts"] == 1

    smtp.accept()
    await make_due(db)
    assert await sender.send_pending() == 1
    state = await row(db, mail_id)
    assert (state["status"], state["attempts"], state["error"]) == ("sent", 2, None)
    assert len(smtp.received) == 1


async def test_an_unreachable_server_is_a_failed_attempt(db: Database) -> None:
    with LocalSmtp() as smtp:
        port = smtp.port
    sender = mailer(db, runtime(smtp, **{"smtp.port": port}))  # nothing listens there now
    mail_id = await sender.queue(db, "verify", "ann@example.com", VERIFY)
    assert await sender.send_pending() == 0
    state = await row(db, mail_id)
    assert (state["status"], state["attempts"]) == ("pending", 1)
    assert state["error"].startswith("SMTPConnectError")


async def test_mail_fails_for_good_after_max_attempts(db: Database, smtp: LocalSmtp) -> None:
    sender = mailer(db, runtime(smtp))
    mail_id = await sender.queue(db, "verify", "ann@example.com", VERIFY)
    smtp.refuse("452 4.2.2 mailbox full")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert (await row(db, mail_id))["status"] == "pending"
        assert await sender.send_pending() == 0
        assert (await row(db, mail_id))["attempts"] == attempt
        await make_due(db)

    state = await row(db, mail_id)
    assert (state["status"], state["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert state["error"] == "SMTPDataError: 452 4.2.2 mailbox full"
    smtp.accept()
    assert await sender.send_pending() == 0  # failed mail is never picked up again
    assert smtp.received == []


async def test_two_instances_send_each_mail_exactly_once(
    db: Database, database_url: str, smtp: LocalSmtp
) -> None:
    settings = runtime(smtp)
    recipients = [f"u{i}@example.com" for i in range(30)]  # more than one pass claims
    for to in recipients:
        await mailer(db, settings).queue(db, "verify", to, VERIFY)
    other_db = await Database.open(database_url, PoolOptions(min_size=1, max_size=4))
    try:
        first, second = mailer(db, settings), mailer(other_db, settings)
        sent = await asyncio.gather(first.send_pending(), second.send_pending())
    finally:
        await other_db.close()

    assert sum(sent) == len(recipients)  # how they split the work depends on scheduling
    assert sorted(r.recipients[0] for r in smtp.received) == sorted(recipients)  # once each
    statuses = await db.fetch("SELECT status, attempts, count(*) FROM baas.mail GROUP BY 1, 2")
    assert [tuple(r) for r in statuses] == [("sent", 1, len(recipients))]


async def test_the_background_sender_delivers_after_wake(db: Database, smtp: LocalSmtp) -> None:
    sender = mailer(db, runtime(smtp))
    await sender.start()
    try:
        async with db.transaction() as tx:
            mail_id = await sender.queue(tx, "password_changed", "ann@example.com", {"email": "x"})
        sender.wake()
        async with asyncio.timeout(5):
            while (await row(db, mail_id))["status"] != "sent":  # noqa: ASYNC110 - polls the db
                await asyncio.sleep(0.02)
    finally:
        await sender.stop()
    [received] = smtp.received
    assert received.message["Subject"] == "Your Acme password was changed"
