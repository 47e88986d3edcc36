"""The hourly sweep drops what auth no longer needs and keeps everything still in use."""

from __future__ import annotations

from baas.auth.housekeeping import sweep
from baas.context import AppContext

_SESSION = (
    "INSERT INTO baas.sessions (subject, role, expires, max_expires, revoked) "
    "VALUES (gen_random_uuid(), 'user', now() + $1::text::interval, "
    "now() + $2::text::interval, now() - $3::text::interval) RETURNING id"
)


async def test_sweep_removes_only_what_is_over(ctx: AppContext) -> None:
    db = ctx.db
    live = await db.fetchval(_SESSION, "1 day", "30 days", None)
    recently_revoked = await db.fetchval(_SESSION, "1 day", "30 days", "1 hour")
    await db.fetchval(_SESSION, "1 day", "30 days", "8 days")  # revoked long ago
    await db.fetchval(_SESSION, "-2 days", "30 days", None)  # idle too long
    await db.fetchval(_SESSION, "1 day", "-2 days", None)  # past its absolute expiry
    await db.execute(
        "INSERT INTO baas.auth_tokens (hash, kind, expires) VALUES "
        "('\\x01', 'reset', now() + interval '1 hour'), ('\\x02', 'reset', now() - interval '2 days')"
    )
    await db.execute(
        "INSERT INTO baas.rate_limits (key, window_start, hits) VALUES "
        "('fresh', now(), 1), ('stale', now() - interval '2 days', 9)"
    )
    await db.execute(
        "INSERT INTO baas.mail (recipient, subject, template, status, created) VALUES "
        "('a@example.com', 's', 'verify', 'sent', now() - interval '40 days'), "
        "('b@example.com', 's', 'verify', 'pending', now() - interval '40 days'), "
        "('c@example.com', 's', 'verify', 'outbox', now())"
    )

    assert await sweep(db) == 6
    sessions = {r["id"] for r in await db.fetch("SELECT id FROM baas.sessions")}
    assert sessions == {live, recently_revoked}
    assert await db.fetchval("SELECT count(*) FROM baas.auth_tokens WHERE kind = 'reset'") == 1
    assert [r["key"] for r in await db.fetch("SELECT key FROM baas.rate_limits")] == ["fresh"]
    recipients = {r["recipient"] for r in await db.fetch("SELECT recipient FROM baas.mail")}
    assert recipients == {"b@example.com", "c@example.com"}  # unsent mail is never swept
    assert await sweep(db) == 0
