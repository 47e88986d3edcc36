"""`baas push send | status | devices`: push notifications from the command line."""

from __future__ import annotations

import json
from typing import Any

import typer

from baas.auth.identity import Identity
from baas.context import AppContext
from baas.push import devices as device_service
from baas.push import service
from cli.runtime import load_settings, operator, run_with_context

app = typer.Typer(
    help="Push notifications: send, follow a message, list devices.", no_args_is_help=True
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
