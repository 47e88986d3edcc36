"""`baas keys create | list | revoke`: service API keys (stored hashed, shown once)."""

from __future__ import annotations

import typer

from baas.auth import keys as key_service
from baas.errors import InvalidParameter, NotFound
from baas.schema.ids import record_id
from cli.runtime import fail, load_settings, run_with_db

app = typer.Typer(help="Service API keys for servers and CI.", no_args_is_help=True)


@app.command()
def create(
    name: str = typer.Argument(..., help="What the key is for, e.g. 'ci' or 'backend'."),
) -> None:
    """Create a key and print it once (only its hash is kept)."""
    try:
        key_service.check_name(name)  # before starting any database
    except InvalidParameter as exc:
        fail(exc)
    row, key = run_with_db(load_settings(), lambda db: key_service.create_key(db, name))
    typer.echo(key)
    typer.secho(
        f"Service key {row['id']} ({name}) created. Store it now: it is not shown again.",
        fg="green",
        err=True,
    )


@app.command("list")
def list_() -> None:
    """List keys (names and prefixes, never the keys)."""
    rows = run_with_db(load_settings(), key_service.list_keys)
    if not rows:
        typer.echo("No service keys yet: create one with `baas keys create NAME`.")
    for row in rows:
        state = "revoked" if row["revoked"] else "active"
        typer.echo(f"{row['id']}  {row['prefix']}…  {state:<8} {row['name']}")


@app.command()
def revoke(key_id: str = typer.Argument(..., help="The key's id (see `baas keys list`).")) -> None:
    """Revoke a key; every server stops accepting it within a moment."""
    canonical = record_id(key_id)
    if canonical is None:
        fail(NotFound("no active service key with this id"))
    run_with_db(load_settings(), lambda db: key_service.revoke_key(db, canonical))
    typer.echo(f"Revoked {canonical}.")
