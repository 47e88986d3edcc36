"""The pages email links open: /auth/verify-email, /auth/reset-password, /auth/confirm-email.

GET shows a form and spends nothing (mail scanners prefetch links); POST redeems the token with
the same service functions the JSON API uses. Apps that handle links themselves point
`auth.link_base` at their own pages and call the /confirm endpoints instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from baas.auth import account
from baas.auth.flows import LINK_PATHS
from baas.context import AppContext
from baas.errors import ApiError, ValidationFailed
from baas.http.request import context, query_params
from baas.http.routing import route

MAX_FORM_BYTES = 4096
_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates" / "pages"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

Confirm = Callable[[AppContext, dict[str, Any]], Awaitable[dict[str, Any]]]

LINK_REFUSED = "This link is invalid, expired or already used: ask for a new one."


class _Page:
    def __init__(self, title: str, button: str, done: str, confirm: Confirm, form: str) -> None:
        self.title, self.button, self.done = title, button, done
        self.confirm, self.form = confirm, form

    async def show(self, request: Request) -> Response:
        """GET (and HEAD): the form, spending nothing."""
        ctx = context(request)
        token = query_params(request).get("token", "")
        if not token:
            return self._render(ctx, message="This link is incomplete.", failed=True, status=400)
        return self._render(ctx, form=self.form, token=token)

    async def submit(self, request: Request) -> Response:
        """POST: redeem the token."""
        ctx = context(request)
        form = await _form(request)
        token = form.get("token", "")
        try:
            await self.confirm(ctx, form)
        except ValidationFailed as exc:  # a weak password: the token is still good, ask again
            problems = exc.fields.values()
            return self._render(
                ctx,
                message=" ".join(p["message"] for p in problems) or exc.message,
                failed=True,
                status=exc.status,
                form=self.form,
                token=token,
            )
        except ApiError as exc:
            retry = self.form == "reset" and exc.code == "invalid_body"
            return self._render(
                ctx,
                message=LINK_REFUSED if exc.code == "invalid_token" else exc.message,
                failed=True,
                status=exc.status,
                form=self.form if retry else None,
                token=token if retry else "",
            )
        return self._render(ctx, message=self.done)

    def _render(
        self,
        ctx: AppContext,
        *,
        message: str = "",
        failed: bool = False,
        form: str | None = None,
        token: str = "",
        status: int = 200,
    ) -> Response:
        html = _env.get_template("link.html").render(
            title=self.title,
            app_name=ctx.runtime["app.name"],
            message=message,
            failed=failed,
            form=form,
            token=token,
            button=self.button,
            min_length=ctx.runtime["auth.password_min_length"],
        )
        return HTMLResponse(html, status_code=status, headers=_HEADERS)


async def _form(request: Request) -> dict[str, Any]:
    """The posted fields; tokens and passwords are short, so the form is too."""
    async with request.form(max_files=0, max_fields=4, max_part_size=MAX_FORM_BYTES) as form:
        return {k: v for k, v in form.items() if isinstance(v, str) and k in ("token", "password")}


_PAGES = {
    "verify": _Page(
        "Verify your email",
        "Verify email",
        "Your email address is verified. You can close this page and go back to the app.",
        account.confirm_verification,
        "ask",
    ),
    "reset": _Page(
        "Choose a new password",
        "Set password",
        "Your password is changed and every device was signed out. Sign in with the new one.",
        account.confirm_reset,
        "reset",
    ),
    "email_change": _Page(
        "Confirm your new email",
        "Confirm email",
        "Your email address is changed. You can close this page and go back to the app.",
        account.confirm_email_change,
        "ask",
    ),
}

routes = [
    route(f"/auth/{LINK_PATHS[kind]}", GET=page.show, POST=page.submit)
    for kind, page in _PAGES.items()
]
