-- The job queue: background work (push delivery, triggers, housekeeping) as rows, so a job exists
-- if and only if the transaction that enqueued it committed, and survives restarts and crashes.
--
-- A worker claims due jobs with FOR UPDATE SKIP LOCKED and holds each under a lease
-- (`locked_until`) it renews while the job runs; a job whose worker died is claimed again once
-- its lease runs out. Failures are retried with backoff until `max_attempts`, then kept as dead
-- with their last error. Finished jobs are kept for a while (for `baas jobs list`), then swept.

CREATE TABLE baas.jobs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}',
  status text NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'running', 'done', 'dead', 'cancelled')),
  run_at timestamptz NOT NULL DEFAULT now(),   -- not before this (scheduled jobs, backoff)
  attempts int NOT NULL DEFAULT 0,             -- claims so far
  max_attempts int NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
  locked_by text,                              -- the worker holding it (host:pid:n)
  locked_until timestamptz,                    -- its lease
  last_error text,
  key text,                                    -- at most one unfinished job per key
  created timestamptz NOT NULL DEFAULT now(),
  updated timestamptz NOT NULL DEFAULT now(),
  finished timestamptz
);
CREATE INDEX jobs_due ON baas.jobs (run_at) WHERE status = 'queued';
CREATE INDEX jobs_leased ON baas.jobs (locked_until) WHERE status = 'running';
CREATE INDEX jobs_finished ON baas.jobs (finished) WHERE finished IS NOT NULL;
CREATE INDEX jobs_kind ON baas.jobs (kind, id);
CREATE UNIQUE INDEX jobs_key ON baas.jobs (key) WHERE status IN ('queued', 'running');

-- Cron entries: `next_run` is claimed by one instance per tick (FOR UPDATE SKIP LOCKED), which
-- enqueues the entry's job and moves `next_run` on in the same transaction.
CREATE TABLE baas.cron (
  name text PRIMARY KEY,
  schedule text NOT NULL,       -- five fields: minute hour day-of-month month day-of-week (UTC)
  kind text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}',
  next_run timestamptz NOT NULL,
  last_run timestamptz,
  last_job bigint
);
