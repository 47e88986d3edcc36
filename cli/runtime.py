"""What CLI commands share: settings, logging, and a migrated database (embedded or external)."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import typer

from baas.app import open_context, pool_options, prepare
from baas.auth.crypto import SecretKeyError
from baas.config import Settings, SettingsError
from baas.context import AppContext
from baas.db.embedded import EmbeddedError, EmbeddedPostgres
from baas.db.pool import Database
from baas.db.supervisor import Supervisor
from baas.errors import ApiError
from baas.logs import setup_logging
from baas.schema.document import SchemaError

T = TypeVar("T")


def load_settings(overrides: dict[str, Any] | None = None, quiet: bool = True) -> Settings:
    try:
        settings = Settings.load(overrides)
    except SettingsError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    setup_logging("warning" if quiet else settings.log_level, settings.log_format)
    return settings


@contextlib.contextmanager
def embedded_if_needed(settings: Settings, *, supervise: bool = False) -> Any:
    """Settings with a database URL, starting the embedded PostgreSQL when none is configured;
    `supervise` (the server) also starts it again whenever it dies (`db.supervisor`)."""
    if not settings.embedded:
        yield settings
        return
    try:
        pg = EmbeddedPostgres(settings.data_dir)
        pg.start()
    except EmbeddedError as exc:
        typer.secho(f"embedded PostgreSQL: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    supervisor = Supervisor(pg, max_restarts=settings.embedded_restarts) if supervise else None
    try:
        if supervisor is not None:
            supervisor.start()
        yield settings.replace(database_url=pg.url)
    finally:
        if supervisor is not None:
            supervisor.stop()  # before stopping PostgreSQL on purpose
        pg.stop()


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Database]:
    options = pool_options(settings)
    db = await Database.open(
        settings.database_url,
        options.__class__(
            min_size=1,
            max_size=2,
            statement_timeout_ms=options.statement_timeout_ms,
            acquire_timeout_s=options.acquire_timeout_s,
            command_timeout_s=options.command_timeout_s,
            application_name="baas-cli",
        ),
    )
    try:
        await prepare(db)
        yield db
    finally:
        await db.close()


def run_with_db(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    """Run `action(db)` against the configured database; ApiErrors become a clean exit."""

    async def main(resolved: Settings) -> T:
        async with database(resolved) as db:
            return await action(db)

    with embedded_if_needed(settings) as resolved:
        try:
            return asyncio.run(main(resolved))
        except ApiError as exc:
            fail(exc)


def run_with_context(settings: Settings, action: Callable[[AppContext], Awaitable[T]]) -> T:
    """Run `action(ctx)` with the server's context (secrets, schema, runtime settings)."""

    async def with_context(db: Database) -> T:
        try:
            ctx = await open_context(settings, db)
        except SecretKeyError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(1) from None
        try:
            return await action(ctx)
        finally:
            await ctx.oidc.close()

    return run_with_db(settings, with_context)


def fail(exc: ApiError, subject: str = "the schema") -> NoReturn:
    """Print the error and exit 1; a schema error (about `subject`) as the list of its problems,
    each once (its message repeats the first)."""
    if isinstance(exc, SchemaError):
        count = len(exc.problems)
        problems = "1 problem" if count == 1 else f"{count} problems"
        typer.secho(f"error: {subject} has {problems}:", fg="red", err=True)
    else:
        typer.secho(f"error: {exc.message}", fg="red", err=True)
    for name, problem in exc.fields.items():
        typer.secho(f"  - {name}: {problem['message']}", fg="red", err=True)
    for problem in exc.details.get("problems", []):
        typer.secho(f"  - {problem}", fg="red", err=True)
    for step in exc.details.get("steps", []):
        typer.secho(f"  - {step}", fg="yellow", err=True)
    raise typer.Exit(1)


def refuse(message: str) -> NoReturn:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(1)


def confirm(question: str, *, refusal: str, flag: str) -> None:
    """Go on once the operator answers yes; without a terminal to ask on (a script, CI), exit
    with `refusal` and the flag that confirms up front, rather than read a missing answer."""
    if not sys.stdin.isatty():
        refuse(f"{refusal} without confirmation (no terminal to ask on); re-run with {flag}.")
    if not typer.confirm(question):
        refuse("Nothing done.")


def operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
