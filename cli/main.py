"""The `baas` command: serve, init, schema, keys, the auth operations, storage, jobs and push."""

from __future__ import annotations

import json
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from baas.schema.jsonschema import schema_file_jsonschema
from baas.schema.yamlio import HEADER
from cli import auth, jobs, keys, push, schema, serve, storage


class _Group(TyperGroup):
    """A command group that lists each command with its whole first sentence, wrapped to the
    terminal, where click would cut it with "..." at the width left beside the names."""

    # Any: recent typer passes its own copy of click's types, older typer click's
    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1_000_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(
    cls=_Group,
    help="baas: a self-hostable backend on PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: an 80-column terminal keeps every option's text whole (rich's tables
    # squeeze the help column beside long flags and cut words with an ellipsis)
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"baas {package_version('baas')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """baas: a self-hostable backend on PostgreSQL."""


app.command(help=serve.serve.__doc__)(serve.serve)
app.add_typer(schema.app, name="schema", cls=_Group)
app.add_typer(keys.app, name="keys", cls=_Group)
app.add_typer(auth.superuser_app, name="superuser", cls=_Group)
app.add_typer(auth.users_app, name="users", cls=_Group)
app.add_typer(auth.mail_app, name="mail", cls=_Group)
app.add_typer(auth.settings_app, name="settings", cls=_Group)
app.add_typer(auth.signing_app, name="signing-keys", cls=_Group)
app.add_typer(storage.app, name="storage", cls=_Group)
app.add_typer(jobs.app, name="jobs", cls=_Group)
app.add_typer(push.app, name="push", cls=_Group)

STARTER = (
    HEADER
    + """\
# Collections become PostgreSQL tables. Apply with: baas schema apply
collections:
  posts:
    fields:
      title: {type: text, required: true, max: 200}
      body: text
      published: {type: bool, nullable: false, default: false}
      views: {type: integer, min: 0, default: 0}
    indexes:
      - [published, created]
"""
)


@app.command()
def init(
    directory: Path = typer.Argument(Path("."), help="Where to write baas.yaml."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
) -> None:
    """Write a starter baas.yaml and its JSON Schema (for editor validation); on the embedded
    database, also send push to the development outbox until real apps are configured."""
    target = directory / "baas.yaml"
    if target.exists() and not force:
        typer.secho(f"{target} exists; use --force to overwrite.", fg="red", err=True)
        raise typer.Exit(1)
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(STARTER, encoding="utf-8")
    (directory / "baas.schema.json").write_text(
        json.dumps(schema_file_jsonschema(), indent=2) + "\n", encoding="utf-8"
    )
    typer.echo(f"Wrote {target} and baas.schema.json.")
    push.starter_outbox()
    typer.echo("Next: baas schema apply && baas serve")


def main() -> None:
    app()
