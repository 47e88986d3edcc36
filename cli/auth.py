"""`baas superuser ...`, `baas users ...`, `baas mail outbox`, `baas settings ...`,
`baas signing-keys ...`: the admin API's auth operations, straight against the database."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer

from baas.auth import mail, superusers, tokens, users
from baas.auth.identity import Identity
from baas.context import AppContext
from baas.errors import ApiError, NotFound
from baas.runtime_settings import update as update_settings
from cli.runtime import confirm, fail, load_settings, operator, refuse, run_with_context

superuser_app = typer.Typer(help="Console administrators.", no_args_is_help=True)
users_app = typer.Typer(help="App users (the built-in users collection).", no_args_is_help=True)
sessions_app = typer.Typer(help="A user's signed-in devices.", no_args_is_help=True)
users_app.add_typer(sessions_app, name="sessions")
mail_app = typer.Typer(help="Mail sent by auth flows.", no_args_is_help=True)
settings_app = typer.Typer(help="Runtime settings (auth, rate limits, SMTP).", no_args_is_help=True)
signing_app = typer.Typer(help="The keys access tokens are signed with.", no_args_is_help=True)

CLI = Identity("service", name="cli")


PASSWORD_ENV = "BAAS_SUPERUSER_PASSWORD"  # noqa: S105 (the variable's name)
PasswordStdinOption = typer.Option(
    False, "--password-stdin", help="Read the password from the first line of standard input."
)


def _password(from_stdin: bool, env: str | None = None) -> str:
    """The new password: standard input's first line (--password-stdin), the variable `env`, or
    asked twice on the terminal, never echoed. A script with none of them is told what to pass."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            refuse("--password-stdin: standard input held no password (one line expected).")
        return password
    if env and os.environ.get(env):
        return os.environ[env]
    if not sys.stdin.isatty():
        also = f", or set {env}" if env else ""
        refuse(f"No terminal to ask for the password on: pass it with --password-stdin{also}.")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _run(action: Any) -> Any:
    return run_with_context(load_settings(), action)


def _address(email: str) -> str:
    """The address as it is stored (checked before any prompt); exits with the problem."""
    try:
        return users.normal_email(email)
    except ApiError as exc:
        fail(exc)


async def _user_id(ctx: AppContext, who: str) -> str:
    """A user's id, from their id or email."""
    if "@" not in who:
        return who
    row = await users.by_email(ctx.db, _address(who))
    if row is None:
        fail(NotFound(f"no user with email {who}"))
    return str(row["id"])


# -- superusers -----------------------------------------------------------------------------------


@superuser_app.command("create")
def superuser_create(
    email: str = typer.Argument(..., help="The administrator's email (their console sign-in)."),
    password_stdin: bool = PasswordStdinOption,
) -> None:
    """Create a console administrator; the password is asked on the terminal, or read from
    standard input (--password-stdin) or BAAS_SUPERUSER_PASSWORD for scripts."""
    email = _address(email)
    password = _password(password_stdin, PASSWORD_ENV)

    async def create(ctx: AppContext) -> dict[str, Any]:
        row = await superusers.create(
            ctx.db, email, password, ctx.runtime["auth.password_min_length"]
        )
        await superusers.prepare_setup(ctx.db, ctx.settings.data_dir)  # drops the setup token
        return row

    row = _run(create)
    typer.secho(f"Superuser {row['email']} created ({row['id']}).", fg="green")


@superuser_app.command("list")
def superuser_list() -> None:
    """List console administrators."""
    rows = _run(lambda ctx: superusers.list_all(ctx.db))
    if not rows:
        typer.echo("No superusers yet: create one with `baas superuser create EMAIL`.")
    for row in rows:
        typer.echo(f"{row['id']}  {row['email']}  last sign-in {row['last_sign_in'] or 'never'}")


@superuser_app.command("delete")
def superuser_delete(
    superuser_id: str = typer.Argument(..., help="Its id (superuser list)."),
) -> None:
    """Delete a console administrator (never the last one)."""
    _run(lambda ctx: superusers.delete(ctx.db, superuser_id))
    typer.echo(f"Deleted superuser {superuser_id}.")


# -- users ----------------------------------------------------------------------------------------


@users_app.command("list")
def users_list(
    search: str = typer.Option(None, "--search", "-s", help="Email prefix or exact id."),
    page: int = typer.Option(1, min=1),
    per_page: int = typer.Option(50, min=1, max=500),
) -> None:
    """List users, newest first."""
    result = _run(lambda ctx: users.admin_list(ctx, search, page, per_page))
    for u in result["items"]:
        flags = [f for f in ("verified", "disabled", "anonymous") if u.get(f)]
        typer.echo(
            f"{u['id']}  {u['email'] or '-':<32} {','.join(flags) or '-':<20} "
            f"sessions {u['active_sessions']}  last sign-in {u['last_sign_in'] or 'never'}"
        )
    typer.echo(f"{result['total']} user(s); page {page}.")


@users_app.command("create")
def users_create(
    email: str = typer.Argument(...),
    password: bool = typer.Option(
        True, "--password/--no-password", help="Prompt for a password (or let them reset one)."
    ),
    verified: bool = typer.Option(False, "--verified", help="Mark the address as confirmed."),
    password_stdin: bool = PasswordStdinOption,
) -> None:
    """Create a user."""
    body: dict[str, Any] = {"email": _address(email), "verified": verified}
    if password:
        body["password"] = _password(password_stdin)
    row = _run(lambda ctx: users.admin_create(ctx, CLI, body))
    typer.secho(f"User {row['email']} created ({row['id']}).", fg="green")


def _set_disabled(who: str, disabled: bool) -> None:
    async def change(ctx: AppContext) -> dict[str, Any]:
        return await users.admin_update(ctx, await _user_id(ctx, who), {"disabled": disabled})

    row = _run(change)
    typer.echo(f"{'Disabled' if disabled else 'Enabled'} {row['email'] or row['id']}.")


@users_app.command("disable")
def users_disable(who: str = typer.Argument(..., help="Id or email.")) -> None:
    """Disable a user: they cannot sign in and every session ends at once."""
    _set_disabled(who, True)


@users_app.command("enable")
def users_enable(who: str = typer.Argument(..., help="Id or email.")) -> None:
    """Enable a disabled user."""
    _set_disabled(who, False)


@users_app.command("delete")
def users_delete(
    who: str = typer.Argument(..., help="Id or email."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a user with their sessions and sign-in methods."""
    if not yes:
        confirm(f"Delete user {who}?", refusal=f"Refusing to delete user {who}", flag="--yes")

    async def delete(ctx: AppContext) -> None:
        await users.admin_delete(ctx, await _user_id(ctx, who))

    _run(delete)
    typer.echo(f"Deleted {who}.")


@sessions_app.command("revoke")
def sessions_revoke(who: str = typer.Argument(..., help="Id or email.")) -> None:
    """End every session of a user (they sign in again on every device)."""

    async def revoke(ctx: AppContext) -> int:
        return await users.admin_revoke_sessions(ctx, await _user_id(ctx, who))

    typer.echo(f"Ended {_run(revoke)} session(s).")


# -- mail -----------------------------------------------------------------------------------------


@mail_app.command("outbox")
def mail_outbox(
    to: str = typer.Option(None, "--to", help="Only mail to this address."),
    limit: int = typer.Option(20, min=1, max=mail.OUTBOX_MAX),
    show: str = typer.Option(None, "--show", help="Print one mail in full (its id)."),
) -> None:
    """Recent mail (the development outbox when no SMTP server is configured)."""
    if show:
        m = _run(lambda ctx: mail.message(ctx.db, ctx.box, show))
        typer.echo(f"To: {m['recipient']}\nSubject: {m['subject']}\nStatus: {m['status']}\n")
        typer.echo(m["text"] or "(body removed after delivery)")
        return
    items = _run(lambda ctx: mail.outbox(ctx.db, ctx.box, limit=limit, recipient=to))
    if not items:
        typer.echo("No mail.")
    for m in items:
        typer.echo(f"{m['id']}  {m['created']:%Y-%m-%d %H:%M}  {m['status']:<7} {m['recipient']}")
        typer.echo(f"    {m['subject']}")


# -- runtime settings ---------------------------------------------------------------------------


@settings_app.command("list")
def settings_list() -> None:
    """Every runtime setting with its value (secrets: only whether set)."""
    items = _run(lambda ctx: _described(ctx))
    for s in items:
        marker = "*" if s["set"] else " "
        typer.echo(f"{marker} {s['name']:<28} {json.dumps(s['value'], default=str)}")
        typer.secho(f"    {s['help']}", dim=True)


async def _described(ctx: AppContext) -> list[dict[str, Any]]:
    return ctx.runtime.describe()


def _value(text: str) -> Any:
    """JSON if it parses (numbers, true/false, objects), the plain text otherwise."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@settings_app.command("set")
def settings_set(
    name: str = typer.Argument(...),
    value: str = typer.Argument(..., help="JSON (10, true, {...}) or plain text."),
) -> None:
    """Change a setting; every running server follows within a moment."""
    _run(
        lambda ctx: update_settings(
            ctx.db, ctx.box, {name: _value(value)}, operator(), ctx.outbound
        )
    )
    typer.echo(f"Set {name}.")


@settings_app.command("unset")
def settings_unset(name: str = typer.Argument(...)) -> None:
    """Put a setting back to its default."""
    _run(lambda ctx: update_settings(ctx.db, ctx.box, {name: None}, operator(), ctx.outbound))
    typer.echo(f"{name} is back to its default.")


# -- signing keys -------------------------------------------------------------------------------


@signing_app.command("list")
def signing_list() -> None:
    """Signing keys: the current one, retired ones and revoked ones."""
    for k in _run(lambda ctx: tokens.list_signing_keys(ctx.db)):
        if k["revoked"]:
            state = f"revoked {k['revoked']:%Y-%m-%d %H:%M}"
        elif k["retired"]:
            state = f"retired {k['retired']:%Y-%m-%d %H:%M}"
        else:
            state = "current"
        typer.echo(f"{k['kid']}  {k['algorithm']}  from {k['active_from']:%Y-%m-%d %H:%M}  {state}")


@signing_app.command("rotate")
def signing_rotate() -> None:
    """Start signing with a new key (tokens the old one signed stay valid until they expire)."""
    rotated = _run(lambda ctx: tokens.rotate_signing_key(ctx.db, ctx.box))
    typer.echo(f"New signing key {rotated['kid']}, used from {rotated['active_in_s']}s from now.")


@signing_app.command("revoke")
def signing_revoke(
    kid: str = typer.Argument(..., help="The key's kid (signing-keys list); rotate first."),
) -> None:
    """Stop trusting a key at once, on every instance (after a leak): tokens it signed are
    refused, and apps refresh to get new ones."""
    revoked = _run(lambda ctx: tokens.revoke_signing_key(ctx.db, kid))
    typer.echo(
        f"Revoked signing key {revoked['kid']}: tokens it signed are refused from now on; "
        f"{revoked['signing_kid']} signs."
    )
