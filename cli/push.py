"""`baas push send | status | devices | outbox`: push notifications from the command line."""

from __future__ import annotations

import json
from typing import Any

import typer

from baas.auth.identity import Identity
from baas.context import AppContext
from baas.push import devices as device_service
from baas.push import outbox as outbox_service
from baas.push import service
from baas.push.apps import DEV_APPS
from baas.runtime_settings import update as update_settings
from baas.schema.ids import record_id
from cli.runtime import load_settings, operator, run_with_context

app = typer.Typer(
    help="Push notifications: send, follow a message, list devices, read the outbox.",
    no_args_is_help=True,
)


def _caller() -> Identity:
    return Identity("service", name=operator())


@app.command()
def send(
    title: str = typer.Option("", "--title", help="The notification's title."),
    body: str = typer.Option("", "--body", help="Its text."),
    user: list[str] = typer.Option([], "--user", help="A user id (repeat for several)."),
    device: list[str] = typer.Option([], "--device", help="A device id (repeat for several)."),
    topic: list[str] = typer.Option([], "--topic", help="A topic (repeat for several)."),
    where: str = typer.Option(None, "--filter", help="A filter over users, e.g. \"team = 'red'\"."),
    data: str = typer.Option(None, "--data", help='JSON data for the app, e.g. \'{"chat": "1"}\'.'),
    at: str = typer.Option(
        None, "--at", help="Send at this ISO time (with offset) instead of now."
    ),
) -> None:
    """Queue a notification; the running servers deliver it. Prints the message id."""
    request: dict[str, Any] = {"title": title or None, "body": body or None}
    request |= {"users": user or None, "devices": device or None, "topics": topic or None}
    request |= {"filter": where, "send_at": at}
    if data is not None:
        try:
            request["data"] = json.loads(data)
        except json.JSONDecodeError as exc:
            typer.secho(f"error: --data is not JSON: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
    body_ = {k: v for k, v in request.items() if v is not None}

    async def queue_it(ctx: AppContext) -> dict[str, Any]:
        return await service.send(ctx, _caller(), body_)

    message = run_with_context(load_settings(), queue_it)
    typer.echo(message["id"])
    typer.secho(
        f"Queued ({message['status']}); a running server sends it. "
        f"Follow it with `baas push status {message['id']}`.",
        fg="green",
        err=True,
    )


@app.command()
def status(message_id: str = typer.Argument(..., help="The id `baas push send` printed.")) -> None:
    """A message's state and how many devices it was sent to, failed or still pending."""

    async def fetch(ctx: AppContext) -> dict[str, Any]:
        return await service.message_status(ctx, message_id)

    m = run_with_context(load_settings(), fetch)
    counts = "  ".join(f"{k}: {v}" for k, v in m["counts"].items())
    typer.echo(f"{m['id']}  {m['status']}  devices: {m['total'] or 0}  {counts}")
    for f in m["failures"]:
        typer.echo(f"  {f['status']} on {f['devices']} device(s): {f['reason']}")


@app.command("devices")
def devices_(user: str = typer.Argument(..., help="The user whose devices to list.")) -> None:
    """A user's registered devices (token endings only)."""

    async def fetch(ctx: AppContext) -> list[dict[str, Any]]:
        return await device_service.list_devices(ctx, _caller(), user, None)

    rows = run_with_context(load_settings(), fetch)
    if not rows:
        typer.echo("No devices.")
    for d in rows:
        state = "enabled" if d["enabled"] else f"disabled ({d['disabled_reason']})"
        typer.echo(
            f"{d['id']}  {d['platform']:<7} …{d['token_end']}  {d['app_id']}  "
            f"{d['locale'] or '-':<6} {state}  {d['name'] or ''}"
        )


@app.command("outbox")
def outbox(
    user: str = typer.Option(None, "--user", help="Only what this user's devices got."),
    message: str = typer.Option(None, "--message", help="Only this message's entries."),
    limit: int = typer.Option(20, min=1, max=outbox_service.LIST_MAX),
    show: str = typer.Option(None, "--show", help="Print one entry in full (its id)."),
) -> None:
    """What the development outbox kept instead of sending ("provider": "outbox" apps)."""
    if show:
        entry = run_with_context(load_settings(), lambda ctx: outbox_service.entry(ctx.db, show))
        typer.echo(json.dumps(entry, indent=2, default=str))
        return
    ids = {"user_id": _id(user, "--user"), "message_id": _id(message, "--message")}

    async def fetch(ctx: AppContext) -> list[dict[str, Any]]:
        return await outbox_service.entries(ctx.db, **ids, limit=limit)

    items = run_with_context(load_settings(), fetch)
    if not items:
        typer.echo("The push outbox is empty.")
    for e in items:
        owner = f"user {e['user_id']}" if e["user_id"] else f"install {e['install_id']}"
        typer.echo(
            f"{e['id']}  {e['created']:%Y-%m-%d %H:%M:%S}  {e['platform']:<7} …{e['token_end']}"
            f"  {owner}"
        )
        typer.echo(f"    {e['title']}" + (f" — {e['body']}" if e["body"] else ""))


def _id(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    canonical = record_id(value)
    if canonical is None:
        typer.secho(f"error: {option} must be an id, not {value[:60]!r}", fg="red", err=True)
        raise typer.Exit(2)
    return canonical


def starter_outbox() -> None:
    """`baas init` on a laptop (the embedded database): push goes to the development outbox
    until real apps are configured. A database named by BAAS_DATABASE_URL may be shared or in
    production: its settings are left alone, and the command is printed instead."""
    command = f"baas settings set push.apps '{json.dumps(DEV_APPS)}'"
    settings = load_settings()
    if not settings.embedded:
        typer.echo(f"Push: to keep notifications in a development outbox, {command}")
        return

    async def configure(ctx: AppContext) -> bool:
        if ctx.runtime.is_set("push.apps"):
            return False
        await update_settings(ctx.db, ctx.box, {"push.apps": DEV_APPS}, operator(), ctx.outbound)
        return True

    if run_with_context(settings, configure):
        typer.echo(
            "Push: the development outbox is configured (push.apps); notifications are kept,"
            " not sent: baas push outbox. Real apps replace it (README, Push notifications)."
        )
    else:
        typer.echo("Push: push.apps is already set; left as it is.")
