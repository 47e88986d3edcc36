"""The jobs admin API: service keys list, show, retry and cancel jobs; others may not."""

from __future__ import annotations

import httpx

from baas.context import AppContext
from baas.jobs import queue
from tests.conftest import as_user


async def test_admins_list_show_retry_and_cancel_jobs(
    admin: httpx.AsyncClient, ctx: AppContext
) -> None:
    await ctx.background.worker.stop()  # the states below are the API's doing alone
    job_id = await queue.enqueue(ctx.db, "nobody.runs.this", {"x": 1}, max_attempts=1)
    await ctx.db.execute(
        "UPDATE baas.jobs SET status = 'dead', finished = now(), last_error = 'boom' WHERE id = $1",
        job_id,
    )
    listed = (await admin.get("/api/admin/jobs", params={"status": "dead"})).json()
    assert [j["id"] for j in listed["items"]] == [job_id]
    assert listed["counts"]["dead"] == 1
    one = (await admin.get(f"/api/admin/jobs/{job_id}")).json()
    assert (one["kind"], one["payload"], one["last_error"]) == (
        "nobody.runs.this",
        {"x": 1},
        "boom",
    )
    retried = await admin.post(f"/api/admin/jobs/{job_id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    cancelled = await admin.post(f"/api/admin/jobs/{job_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    conflict = await admin.post(f"/api/admin/jobs/{job_id}/retry")
    assert conflict.status_code == 200  # cancelled jobs may be retried
    again = await admin.post(f"/api/admin/jobs/{job_id}/retry")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_state"
    assert (await admin.get("/api/admin/jobs/99999")).status_code == 404
    bad = await admin.get("/api/admin/jobs", params={"limit": "0"})
    assert bad.status_code == 400
    unknown = await admin.get("/api/admin/jobs", params={"colour": "red"})
    assert unknown.status_code == 400


async def test_jobs_are_for_admins_only(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/admin/jobs")).status_code == 401
    user = await client.get(
        "/api/admin/jobs", headers=as_user("0193a0f0-0000-7000-8000-000000000001")
    )
    assert user.status_code == 403
