-- The change log without NOTIFY and without numbering each row.
--
-- A transaction that has notified commits under one database-wide lock held through its WAL
-- flush, so such commits run one at a time: the change-log trigger no longer notifies (nor does
-- the file-cleanup trigger, nor the push-trigger job enqueue). The server wakes its readers after
-- commit, and they poll for writes made by anything else (see baas/db/bells.py).
--
-- Each log row carries the id of its writing transaction (`tx`). The readers take turns making
-- ticks: a tick is the set of transactions that committed between two snapshots (visible in
-- `upto`, not in `since`), and numbers their net events after `base`. So a change's public id is
-- computed when read, never written back to its row, and every reader computes the same one.

-- Changes committed before this migration are numbered by the sequencer they were written for,
-- then carried over to the new log (below), so their ids and replays stay as they were.
LOCK TABLE baas.changes IN SHARE ROW EXCLUSIVE MODE;
SELECT baas.sequence_changes();

CREATE TABLE baas.change_log (
  id bigint GENERATED ALWAYS AS IDENTITY,  -- the order rows were written in
  tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
  collection text NOT NULL,
  record_id uuid NOT NULL,
  op "char" NOT NULL,
  new jsonb,  -- the row after this write (INSERT, UPDATE)
  old jsonb   -- the row before this write (UPDATE, DELETE)
);
-- The one index: ticks and trims find rows by transaction id.
CREATE INDEX change_log_tx ON baas.change_log (tx);

CREATE TABLE baas.change_ticks (
  base bigint PRIMARY KEY,     -- the change id before the tick's first
  n int NOT NULL,              -- its events: change ids base + 1 .. base + n
  since pg_snapshot NOT NULL,  -- transactions committed in neither ...
  upto pg_snapshot NOT NULL,   -- ... but in this one are the tick's
  at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE baas.change_state ADD COLUMN snap pg_snapshot;
UPDATE baas.change_state SET snap = pg_current_snapshot();
ALTER TABLE baas.change_state ALTER COLUMN snap SET NOT NULL;

-- The changes a client may still replay (every id in (trimmed_through, last_pos] is there) move
-- to the new log as one tick, in id order, each standing for a transaction of its own: the k-th
-- change of a record gets the stand-in transaction id 2 + k (below every real one, so no real
-- tick ever sees them, and no two changes of one record merge). The tick numbers them exactly
-- as the sequencer did. When the stand-ins would reach real transaction ids (a record changed
-- more often than the database has had transactions), they are dropped instead: replays from
-- before the upgrade then ask the client to refetch.
DO $$
DECLARE
  st record;
  kept bigint;
  depth bigint;
  newest timestamptz;
BEGIN
  SELECT last_pos, trimmed_through INTO st FROM baas.change_state WHERE id = 1;
  SELECT count(*), coalesce(max(c.k), 0), max(c.at) INTO kept, depth, newest FROM (
    SELECT row_number() OVER (PARTITION BY collection, record_id ORDER BY pos) AS k, at
    FROM baas.changes WHERE pos > st.trimmed_through
  ) c;
  IF kept = 0 OR kept <> st.last_pos - st.trimmed_through
     OR (3 + depth)::text::xid8 > pg_snapshot_xmin(pg_current_snapshot()) THEN
    UPDATE baas.change_state SET trimmed_through = last_pos WHERE id = 1;
    RETURN;
  END IF;
  INSERT INTO baas.change_log (tx, collection, record_id, op, new, old)
  SELECT (2 + row_number() OVER (PARTITION BY collection, record_id ORDER BY pos))::text::xid8,
         collection, record_id, op, new, old
  FROM baas.changes WHERE pos > st.trimmed_through
  ORDER BY pos;
  INSERT INTO baas.change_ticks (base, n, since, upto, at)
  VALUES (st.trimmed_through, kept, '3:3:'::pg_snapshot,
          format('%s:%s:', 3 + depth, 3 + depth)::pg_snapshot, newest);
END $$;

-- The change-log trigger, as in 0007 but writing to the new log and notifying nobody.
CREATE OR REPLACE FUNCTION baas.record_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  left_out text[] := coalesce(TG_ARGV, '{}');  -- TG_ARGV is null without arguments
  n jsonb;
  o jsonb;
BEGIN
  IF TG_OP = 'INSERT' THEN
    n := to_jsonb(NEW) - left_out;
    INSERT INTO baas.change_log (collection, record_id, op, new)
    VALUES (TG_TABLE_NAME, NEW.id, 'I', n);
  ELSIF TG_OP = 'UPDATE' THEN
    n := to_jsonb(NEW) - left_out;
    o := to_jsonb(OLD) - left_out;
    INSERT INTO baas.change_log (collection, record_id, op, new, old)
    VALUES (TG_TABLE_NAME, NEW.id, 'U', n, o);
  ELSE
    INSERT INTO baas.change_log (collection, record_id, op, old)
    VALUES (TG_TABLE_NAME, OLD.id, 'D', to_jsonb(OLD) - left_out);
    DELETE FROM baas.files WHERE collection = TG_TABLE_NAME AND record_id = OLD.id;
  END IF;
  IF n IS NOT NULL
     AND EXISTS (SELECT 1 FROM baas.push_trigger_collections WHERE collection = TG_TABLE_NAME) THEN
    INSERT INTO baas.jobs (kind, payload) VALUES (
      'push.trigger',
      jsonb_build_object('collection', TG_TABLE_NAME, 'op', lower(TG_OP), 'new', n, 'old', o));
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION baas.file_dropped() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO baas.file_cleanup (key, due) VALUES (OLD.key, now())
  ON CONFLICT (key) DO UPDATE SET due = now();
  RETURN NULL;
END $$;

DROP FUNCTION baas.next_changes(bigint, int);
DROP FUNCTION baas.sequence_changes();
DROP TABLE baas.changes;

-- The net events of the transactions committed between two snapshots, numbered after `base` in
-- the order of each one's last write: per transaction and record ONE event, the record as
-- committed (`new`) beside the row before the transaction (`old`); nothing for a record the
-- transaction created and deleted. For any one record this is commit order: a second writer
-- of a row writes only after the first committed.
CREATE FUNCTION baas.change_events(since pg_snapshot, upto pg_snapshot, base bigint)
RETURNS TABLE (pos bigint, collection text, record_id uuid, op text, new text, old text)
LANGUAGE sql STABLE AS $$
  SELECT base + row_number() OVER (ORDER BY e.last), e.collection, e.record_id,
         CASE WHEN e.old IS NULL THEN 'I' WHEN e.new IS NULL THEN 'D' ELSE 'U' END,
         e.new::text, e.old::text
  FROM (
    SELECT c.collection, c.record_id, max(c.id) AS last,
           (array_agg(c.old ORDER BY c.id))[1] AS old,
           (array_agg(c.new ORDER BY c.id DESC))[1] AS new
    FROM baas.change_log c
    WHERE (c.tx >= pg_snapshot_xmax(since) OR c.tx = ANY (ARRAY(SELECT pg_snapshot_xip(since))))
      AND c.tx < pg_snapshot_xmax(upto)
      AND pg_visible_in_snapshot(c.tx, upto) AND NOT pg_visible_in_snapshot(c.tx, since)
    GROUP BY c.tx, c.collection, c.record_id
  ) e
  WHERE e.old IS NOT NULL OR e.new IS NOT NULL
  ORDER BY e.last
$$;

-- Make a tick of what committed since the last one; returns the last change id given out.
-- Readers take turns on the state row, and each takes its snapshot after its turn began, so
-- ticks never overlap and a change id once read is final. One write per tick, none per change.
CREATE FUNCTION baas.change_tick() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  st record;
  cur pg_snapshot;
  events bigint;
BEGIN
  SELECT last_pos, snap INTO st FROM baas.change_state WHERE id = 1;
  IF NOT EXISTS (
    SELECT 1 FROM baas.change_log c
    WHERE c.tx >= pg_snapshot_xmax(st.snap) OR c.tx = ANY (ARRAY(SELECT pg_snapshot_xip(st.snap)))
  ) THEN
    RETURN st.last_pos;  -- nothing committed since (rows of open transactions are not seen)
  END IF;
  SELECT last_pos, snap INTO st FROM baas.change_state WHERE id = 1 FOR UPDATE;
  cur := pg_current_snapshot();
  SELECT count(*) INTO events FROM baas.change_events(st.snap, cur, st.last_pos);
  IF events > 0 THEN
    INSERT INTO baas.change_ticks (base, n, since, upto)
    VALUES (st.last_pos, events, st.snap, cur);
  END IF;
  UPDATE baas.change_state SET last_pos = st.last_pos + events, snap = cur WHERE id = 1;
  RETURN st.last_pos + events;
END $$;

-- Up to `max_rows` changes after `after`, in order (of the ticks made so far).
CREATE FUNCTION baas.read_changes(after bigint, max_rows int)
RETURNS TABLE (pos bigint, collection text, record_id uuid, op text, new text, old text)
LANGUAGE plpgsql AS $$
DECLARE
  t record;
  got bigint := 0;
  more bigint;
BEGIN
  FOR t IN
    SELECT k.base, k.since, k.upto FROM baas.change_ticks k
    WHERE k.base >= coalesce((SELECT max(b.base) FROM baas.change_ticks b WHERE b.base <= after), 0)
      AND k.base + k.n > after
    ORDER BY k.base
  LOOP
    RETURN QUERY SELECT e.* FROM baas.change_events(t.since, t.upto, t.base) e
      WHERE e.pos > after ORDER BY e.pos LIMIT max_rows - got;
    GET DIAGNOSTICS more = ROW_COUNT;
    got := got + more;
    EXIT WHEN got >= max_rows;
  END LOOP;
END $$;

-- The changes in (after, till] of one collection (or one record), at most `max_rows`.
CREATE FUNCTION baas.replay_changes(
  coll text, rec uuid, after bigint, till bigint, max_rows int
) RETURNS TABLE (pos bigint, collection text, record_id uuid, op text, new text, old text)
LANGUAGE plpgsql AS $$
DECLARE
  t record;
  got bigint := 0;
  more bigint;
BEGIN
  FOR t IN
    SELECT k.base, k.since, k.upto FROM baas.change_ticks k
    WHERE k.base >= coalesce((SELECT max(b.base) FROM baas.change_ticks b WHERE b.base <= after), 0)
      AND k.base + k.n > after AND k.base < till
    ORDER BY k.base
  LOOP
    RETURN QUERY SELECT e.* FROM baas.change_events(t.since, t.upto, t.base) e
      WHERE e.pos > after AND e.pos <= till AND e.collection = coll
        AND (rec IS NULL OR e.record_id = rec)
      ORDER BY e.pos LIMIT max_rows - got;
    GET DIAGNOSTICS more = ROW_COUNT;
    got := got + more;
    EXIT WHEN got >= max_rows;
  END LOOP;
END $$;

-- Drop the oldest ticks (at most `max_ticks`) made before the retention window, whole, with
-- their rows and any older ones; returns how many changes went. `trimmed_through` is then the
-- last change id dropped: a replay from below it asks for a refetch.
CREATE FUNCTION baas.trim_changes(keep_s float8, max_ticks int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  through bigint;
  last record;
  gone bigint;
BEGIN
  SELECT max(k.base) INTO through FROM (
    SELECT base FROM baas.change_ticks
    WHERE at < now() - make_interval(secs => keep_s) ORDER BY base LIMIT max_ticks
  ) k;
  IF through IS NULL THEN
    RETURN 0;
  END IF;
  SELECT base, n, upto INTO last FROM baas.change_ticks WHERE base = through;
  DELETE FROM baas.change_log
   WHERE tx < pg_snapshot_xmax(last.upto) AND pg_visible_in_snapshot(tx, last.upto);
  WITH dropped AS (DELETE FROM baas.change_ticks WHERE base <= last.base RETURNING n)
  SELECT coalesce(sum(n), 0) INTO gone FROM dropped;
  UPDATE baas.change_state SET trimmed_through = greatest(trimmed_through, last.base + last.n)
   WHERE id = 1;
  RETURN gone;
END $$;
