"""`baas jobs list | show | retry | cancel`: the background job queue."""

from __future__ import annotations

import json
from typing import Any

import typer

from baas.jobs import queue
from cli.runtime import load_settings, run_with_db

app = typer.Typer(
    help="Background jobs (push delivery, triggers, housekeeping).", no_args_is_help=True
)


@app.command("list")
def list_(
    status: str = typer.Option(None, "--status", help="queued, running, done, dead or cancelled."),
    kind: str = typer.Option(None, "--kind", help="Only jobs of this kind, e.g. push.deliver."),
    limit: int = typer.Option(50, "--limit", help=f"At most this many (up to {queue.MAX_LIST})."),
) -> None:
    """The newest jobs first, with how many are in each state."""

    async def fetch(db: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
        items = await queue.list_jobs(db, status=status, kind=kind, limit=limit)
        return items, await queue.counts(db)

    items, counts = run_with_db(load_settings(), fetch)
    typer.echo("  ".join(f"{name}: {n}" for name, n in counts.items()))
    for j in items:
        error = f"  {j['last_error'][:80]}" if j["last_error"] else ""
        when = j["run_at"].strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(
            f"{j['id']:>8}  {j['status']:<9} {j['kind']:<16} "
            f"{j['attempts']}/{j['max_attempts']}  {when}{error}"
        )


@app.command()
def show(job_id: int = typer.Argument(..., help="The job's id (see `baas jobs list`).")) -> None:
    """One job, all of it, as JSON."""
    job = run_with_db(load_settings(), lambda db: queue.get_job(db, job_id))
    typer.echo(json.dumps(job, indent=2, default=str))


@app.command()
def retry(job_id: int = typer.Argument(..., help="A dead or cancelled job's id.")) -> None:
    """Run a dead or cancelled job again now (its attempts start afresh)."""
    run_with_db(load_settings(), lambda db: queue.retry_job(db, job_id))
    typer.echo(f"Job {job_id} queued again.")


@app.command()
def cancel(job_id: int = typer.Argument(..., help="A queued or dead job's id.")) -> None:
    """Cancel a job that has not started."""
    run_with_db(load_settings(), lambda db: queue.cancel_job(db, job_id))
    typer.echo(f"Job {job_id} cancelled.")
