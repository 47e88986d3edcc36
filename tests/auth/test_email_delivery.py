"""Auth mail over SMTP end to end: settings changed through the admin API, a flow triggered over
HTTP, the message received by a real (local) SMTP server; and operator template overrides."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.message import EmailMessage
from typing import Any, TypeVar

import httpx
import pytest

from baas.app import create_app
from baas.config import Settings
from tests.auth.conftest import ADMIN, Account, configure, mails, sign_in, token_of
from tests.auth.smtp_server import LocalSmtp
from tests.conftest import asgi_with_state

NEW_PASSWORD = "a brand new passphrase 42"
SENDER = "Acme <noreply@acme.test>"
T = TypeVar("T")


@pytest.fixture
def smtp() -> Iterator[LocalSmtp]:
    with LocalSmtp() as server:
        yield server


async def _use_smtp(client: httpx.AsyncClient, smtp: LocalSmtp) -> None:
    await configure(
        client,
        app__name="Acme",
        mail__from=SENDER,
        smtp__host="127.0.0.1",
        smtp__port=smtp.port,
        smtp__security="none",
        smtp__timeout_s=5,
    )


async def _until(probe: Callable[[], Awaitable[T | None]]) -> T:
    """The first truthy answer of `probe`, asked every 20 ms for at most 10 s."""
    for _ in range(500):
        answer = await probe()
        if answer:
            return answer
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting")


async def _received(smtp: LocalSmtp, count: int = 1) -> list[EmailMessage]:
    async def arrived() -> list[EmailMessage] | None:
        messages = smtp.messages()
        return messages if len(messages) >= count else None

    return await _until(arrived)


def _parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


async def _newest(
    client: httpx.AsyncClient, recipient: str, template: str, *, settled: bool = True
) -> dict[str, Any]:
    """The newest `template` mail to `recipient`, once the sender has tried it (`settled`)."""

    async def found() -> dict[str, Any] | None:
        mail = next(m for m in await mails(client, recipient) if m["template"] == template)
        tried = mail["status"] != "pending" or mail["error"] is not None
        return mail if tried or not settled else None

    return await _until(found)


async def test_a_reset_mail_arrives_over_smtp(
    anon: httpx.AsyncClient, alice: Account, smtp: LocalSmtp
) -> None:
    await _use_smtp(anon, smtp)
    response = await anon.post("/api/auth/password-reset", json={"email": alice.email})
    assert response.status_code == 202, response.text

    [message] = await _received(smtp)
    [received] = smtp.received
    assert (received.sender, received.recipients) == ("noreply@acme.test", [alice.email])
    assert message["To"] == alice.email
    assert message["From"] == SENDER
    assert message["Subject"] == "Reset your Acme password"
    text, html = _parts(message)
    [link] = [word for word in text.split() if "/auth/reset-password?token=" in word]
    assert link in html

    mail = await _newest(anon, alice.email, "reset")
    assert (mail["status"], mail["attempts"], mail["error"]) == ("sent", 1, None)
    assert (mail["text"], mail["html"]) == (None, None)  # the body (and its link) is gone
    one = await anon.get(f"/api/admin/mail/{mail['id']}", headers=ADMIN)
    assert (one.json()["status"], one.json()["text"]) == ("sent", None)

    done = await anon.post(
        "/api/auth/password-reset/confirm",
        json={"token": token_of(link), "password": NEW_PASSWORD},
    )
    assert done.status_code == 200, done.text
    await sign_in(anon, alice.email, NEW_PASSWORD)
    notices = await _received(smtp, 2)
    assert notices[1]["Subject"] == "Your Acme password was changed"


async def test_mail_queued_before_smtp_stays_in_the_outbox(
    anon: httpx.AsyncClient, alice: Account, smtp: LocalSmtp
) -> None:
    await _use_smtp(anon, smtp)
    await anon.post("/api/auth/password-reset", json={"email": alice.email})
    await _received(smtp)
    verify = next(m for m in await mails(anon, alice.email) if m["template"] == "verify")
    assert verify["status"] == "outbox"
    assert verify["text"]
    assert [r.recipients for r in smtp.received] == [[alice.email]]  # only the reset


async def test_an_unreachable_smtp_server_fails_the_mail_not_the_request(
    anon: httpx.AsyncClient, alice: Account
) -> None:
    with LocalSmtp() as gone:
        port = gone.port
    await _use_smtp(anon, gone)
    await configure(anon, smtp__port=port)  # nothing listens there now
    response = await anon.post("/api/auth/password-reset", json={"email": alice.email})
    assert response.status_code == 202, response.text
    mail = await _newest(anon, alice.email, "reset")
    assert mail["status"] == "pending"
    assert str(mail["error"]).startswith("SMTPConnectError")
    assert mail["text"]  # kept for the retry


async def test_the_smtp_password_is_never_shown_back(anon: httpx.AsyncClient) -> None:
    await configure(anon, smtp__password="s3cret-pw")
    response = await anon.get("/api/admin/settings", headers=ADMIN)
    assert "s3cret-pw" not in response.text
    [setting] = [s for s in response.json()["items"] if s["name"] == "smtp.password"]
    assert (setting["value"], setting["set"], setting["secret"]) == (True, True, True)


BAD_SETTINGS = [
    ("mail.from", "Acme <noreply@acme.test>\r\nBcc: eve@evil.test"),  # a header injection
    ("mail.from", "nobody"),
    ("mail.from", ""),
    ("mail.from", "ann@example.com, eve@evil.test"),
    ("auth.link_base", "javascript:alert(1)"),
    ("auth.link_base", "https://app.example.com/auth?from=mail"),  # links append ?token=
    ("auth.link_base", "https://app.example.com/auth#links"),
    ("auth.link_base", "https://app.example.com/a b"),
    ("auth.link_base", "https://app.example.com/\nauth"),
]


@pytest.mark.parametrize(("name", "value"), BAD_SETTINGS)
async def test_settings_that_would_break_every_mail_are_refused(
    anon: httpx.AsyncClient, name: str, value: str
) -> None:
    response = await anon.patch("/api/admin/settings", json={name: value}, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["fields"][name]["code"] == "invalid_value"


async def test_sender_and_link_base_accept_the_usual_forms(anon: httpx.AsyncClient) -> None:
    for sender in ("noreply@acme.test", SENDER, '"Acme, Inc." <noreply@acme.test>'):
        await configure(anon, mail__from=sender)
    await configure(anon, auth__link_base="myapp://auth/")
    await anon.post("/api/auth/sign-up", json={"email": "ann@example.com", "password": "a pass 42"})
    [mail] = await mails(anon, "ann@example.com")
    assert "myapp://auth/verify-email?token=" in mail["text"]


# -- operator templates --------------------------------------------------------------------------


@pytest.fixture
async def branded(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client on an app whose data directory overrides the reset mail's subject (written
    before the app starts, as an operator would)."""
    overrides = settings.data_dir / "templates" / "mail"
    overrides.mkdir(parents=True)
    (overrides / "reset.subject.txt").write_text("{{ app_name }}: your new-password link\n")
    application = create_app(settings)  # the real bearer authentication
    async with application.router.lifespan_context(application) as state:
        transport = httpx.ASGITransport(app=asgi_with_state(application, dict(state or {})))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_an_operator_template_changes_the_subject(
    branded: httpx.AsyncClient, smtp: LocalSmtp
) -> None:
    response = await branded.post(
        "/api/auth/sign-up", json={"email": "ann@example.com", "password": "a good passphrase 1"}
    )
    assert response.status_code == 202, response.text
    await _use_smtp(branded, smtp)
    await branded.post("/api/auth/password-reset", json={"email": "ann@example.com"})

    [message] = await _received(smtp)
    assert message["Subject"] == "Acme: your new-password link"
    text, _ = _parts(message)
    assert "/auth/reset-password?token=" in text  # the package's body still serves
    verify = (await mails(branded, "ann@example.com"))[-1]
    assert verify["subject"] == "Confirm your email for baas"  # other templates untouched
