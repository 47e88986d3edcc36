"""`baas schema validate | diff | apply | pull | history | jsonschema`: the schema as code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from baas.db.pool import Database
from baas.schema import service
from baas.schema.diff import Plan
from baas.schema.document import SchemaError, parse_document, to_document
from baas.schema.jsonschema import schema_file_jsonschema
from baas.schema.yamlio import dump_yaml, load_yaml, rewrite_yaml
from cli.runtime import confirm, fail, load_settings, operator, refuse, run_with_db

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
        refuse("Refusing destructive steps; re-run with --allow-destructive to confirm.")
    if not yes:
        confirm("Apply these changes?", refusal="Refusing to apply", flag="--yes")


@app.command()
def pull(
    file: Path = FileOption,
    stdout: bool = typer.Option(False, "--stdout", help="Print instead of writing the file."),
    force: bool = typer.Option(
        False, "--force", help="Overwrite a schema file that differs without asking."
    ),
) -> None:
    """Write the live schema to the schema file. A file that differs is overwritten only once
    confirmed (or with --force); the old one is kept as FILE.bak, and so is the text of every
    collection that did not change (comments, short forms, order)."""
    schema = run_with_db(load_settings(), service.load)
    document = to_document(schema)
    if stdout:
        typer.echo(dump_yaml(document), nl=False)
        return
    path = _schema_file(file)
    old = path.read_text(encoding="utf-8") if path.is_file() else None
    text, kept = (dump_yaml(document), ()) if old is None else rewrite_yaml(old, document)
    if text == old:
        typer.echo(f"{path} already matches schema version {schema.version}; left as it is.")
        return
    backup = path.with_name(path.name + ".bak")
    if old is not None:
        if not force:
            confirm(
                f"{path} differs from the live schema (version {schema.version}). Overwrite it, "
                f"keeping the old file as {backup}?",
                refusal=f"Refusing to overwrite {path}",
                flag=f"--force (the old file is kept as {backup.name}), or print it with --stdout",
            )
        backup.write_text(old, encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    typer.echo(f"Wrote schema version {schema.version} to {path}.")
    if old is not None:
        unchanged = f"; {', '.join(kept)} kept as written" if kept else ""
        typer.echo(f"The previous file is kept as {backup}{unchanged}.")


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
