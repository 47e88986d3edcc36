"""The `baas` command: serve, init, schema, keys, the auth operations, storage, jobs and push."""

from __future__ import annotations

import json
from importlib.metadata import version as package_version
from pathlib import Path

import typer

from baas.schema.jsonschema import schema_file_jsonschema
from baas.schema.yamlio import HEADER
from cli import auth, jobs, keys, push, schema, serve, storage

app = typer.Typer(
    help="baas: a self-hostable backend on PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
app.add_typer(schema.app, name="schema")
app.add_typer(keys.app, name="keys")
app.add_typer(auth.superuser_app, name="superuser")
app.add_typer(auth.users_app, name="users")
app.add_typer(auth.mail_app, name="mail")
app.add_typer(auth.settings_app, name="settings")
app.add_typer(auth.signing_app, name="signing-keys")
app.add_typer(storage.app, name="storage")
app.add_typer(jobs.app, name="jobs")
app.add_typer(push.app, name="push")

STARTER = (
    HEADER
    + """\
# Collections become PostgreSQL tables. Apply with: baas schema apply
collections:
  posts:
    fields:
      title: {type: text, required: true, max: 200}
      body: text
      published: {type: bool, default: false}
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
