"""`baas schema validate | diff | apply | pull | history | jsonschema`: the schema as code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

from baas.db.pool import Database
from baas.schema import service
from baas.schema.diff import Plan
from baas.schema.document import SchemaError, parse_document, to_document
from baas.schema.jsonschema import schema_file_jsonschema
from baas.schema.yamlio import dump_yaml, load_yaml
from cli.runtime import fail, load_settings, operator, run_with_db

app = typer.Typer(
    help="Manage collections as code: validate, diff, apply, pull, history.",
    no_args_is_help=True,
)

FileOption = typer.Option(
    None, "--file", "-f", help="Schema file [default: BAAS_SCHEMA_FILE or baas.yaml]"
)


def _schema_file(path: Path | None) -> Path:
    return path or load_settings().schema_file


def _read_document(path: Path) -> Any:
    """The schema file's document, checked here so a typo needs no database."""
    if not path.is_file():
        typer.secho(f"error: {path} not found (create one with `baas init`)", fg="red", err=True)
        raise typer.Exit(1)
    try:
        document = load_yaml(path.read_text(encoding="utf-8"))
        parse_document(document)
    except SchemaError as exc:
        fail(exc, subject=str(path))
    return document


def print_plan(plan: Plan, verbose: bool) -> None:
    if plan.empty:
        typer.echo("No changes: the database matches the schema file.")
        return
    typer.echo(f"Plan against schema version {plan.base_version} ({len(plan.steps)} steps):")
    for number, step in enumerate(plan.steps, 1):
        mark = typer.style(" DESTRUCTIVE", fg="red", bold=True) if step.destructive else ""
        typer.echo(f"  {number:>3}. {step.summary}{mark}")
        if verbose:
            for statement in step.statements:
                typer.secho(f"         {statement.sql}", fg="cyan")


@app.command()
def validate(file: Path = FileOption) -> None:
    """Check the schema file, without a database (for CI and pre-commit hooks)."""
    path = _schema_file(file)
    schema = parse_document(_read_document(path))
    typer.echo(f"{path} is valid: {len(schema.collections)} collections (users included).")


@app.command()
def diff(
    file: Path = FileOption,
    verbose: bool = typer.Option(False, "--sql", "-v", help="Show the SQL of each step."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Show what `apply` would change, step by step."""
    document = _read_document(_schema_file(file))
    plan = run_with_db(load_settings(), lambda db: service.diff(db, document))
    if as_json:
        typer.echo(json.dumps(plan.to_json(), indent=2))
    else:
        print_plan(plan, verbose)


@app.command()
def apply(
    file: Path = FileOption,
    allow_destructive: bool = typer.Option(
        False, "--allow-destructive", help="Allow steps that drop data or narrow types."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    verbose: bool = typer.Option(False, "--sql", "-v", help="Show the SQL of each step."),
) -> None:
    """Apply the schema file to the database in one transaction."""
    document = _read_document(_schema_file(file))

    async def action(db: Database) -> int | None:
        plan = await service.diff(db, document)
        print_plan(plan, verbose)
        if plan.empty:
            return None
        _confirm(plan, allow_destructive, yes)
        applied = await service.apply(
            db, plan, allow_destructive=allow_destructive, applied_by=operator()
        )
        return applied.version

    version = run_with_db(load_settings(), action)
    if version is not None:
        typer.secho(f"Applied: the schema is now at version {version}.", fg="green")


def _confirm(plan: Plan, allow_destructive: bool, yes: bool) -> None:
    """Exit unless destructive steps are allowed and the change is confirmed (--yes or y)."""
    if plan.destructive_steps and not allow_destructive:
        _refuse("Refusing destructive steps; re-run with --allow-destructive to confirm.")
    if yes:
        return
    if not sys.stdin.isatty():
        _refuse("Refusing to apply without confirmation; re-run with --yes.")
    if not typer.confirm("Apply these changes?"):
        _refuse("Nothing applied.")


def _refuse(message: str) -> NoReturn:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(1)


@app.command()
def pull(
    file: Path = FileOption,
    stdout: bool = typer.Option(False, "--stdout", help="Print instead of writing the file."),
) -> None:
    """Write the live schema to the schema file."""
    schema = run_with_db(load_settings(), service.load)
    text = dump_yaml(to_document(schema))
    if stdout:
        typer.echo(text, nl=False)
        return
    path = _schema_file(file)
    path.write_text(text, encoding="utf-8")
    typer.echo(f"Wrote schema version {schema.version} to {path}.")


@app.command()
def history(limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000)) -> None:
    """List applied schema changes, newest first."""
    rows = run_with_db(load_settings(), lambda db: service.history(db, limit))
    if not rows:
        typer.echo("No schema changes applied yet.")
    for row in rows:
        steps = row["plan"].get("steps", [])
        when = row["applied_at"].strftime("%Y-%m-%d %H:%M:%S UTC")
        typer.echo(f"v{row['version']:<5} {when}  {row['applied_by']:<24} {len(steps)} step(s)")
        for step in steps:
            typer.echo(f"        - {step['summary']}")


@app.command()
def jsonschema() -> None:
    """Print the JSON Schema of schema files (for editor validation)."""
    typer.echo(json.dumps(schema_file_jsonschema(), indent=2))


__all__ = ["app"]
