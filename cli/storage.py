"""`baas storage check`: prove the configured file storage can write, read and delete."""

from __future__ import annotations

import asyncio

import typer

from baas.config import Settings
from baas.storage.backend import StorageUnavailable, open_backend
from cli.runtime import fail, load_settings

app = typer.Typer(help="File storage (a local directory or an S3 bucket).", no_args_is_help=True)


@app.command()
def check() -> None:
    """Write, read back and delete a probe object in the configured storage."""
    try:
        description = asyncio.run(_check(load_settings()))
    except StorageUnavailable as exc:
        fail(exc)
    typer.secho(description, fg="green")


async def _check(settings: Settings) -> str:
    backend = open_backend(settings)
    try:
        return await backend.check()
    finally:
        await backend.close()
