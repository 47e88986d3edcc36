-- Realtime: the change log every collection table appends to in the writing transaction, the
-- sequencer that numbers committed changes in commit order, and presence across instances.

-- One row per inserted, updated or deleted record. `id` is taken when the row is written, so
-- transactions that commit out of order leave gaps that fill later; `pos` is the public change
-- id, given by the sequencer once the row is committed: a client that saw pos N has seen every
-- change numbered below N, whenever it committed.
CREATE TABLE baas.changes (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  pos bigint UNIQUE,
  collection text NOT NULL,
  record_id uuid NOT NULL,
  op "char" NOT NULL CHECK (op IN ('I', 'U', 'D')),
  new jsonb,  -- the row as committed (INSERT, UPDATE)
  old jsonb,  -- the row before (UPDATE, DELETE)
  at timestamptz NOT NULL DEFAULT now()
);
-- Few indexes: every write pays for each twice (its insert, and its numbering). Replays scan a
-- range of `pos`; trimming walks `id` from the oldest.
CREATE INDEX changes_pending ON baas.changes (id) WHERE pos IS NULL;

-- The sequencer's state: the last change id given out, and the highest one trimmed away (a
-- client whose last id is below it missed changes that are gone: it must refetch).
CREATE TABLE baas.change_state (
  id int PRIMARY KEY CHECK (id = 1),
  last_pos bigint NOT NULL,
  trimmed_through bigint NOT NULL
);
INSERT INTO baas.change_state VALUES (1, 0, 0);

-- The trigger on every collection table; its arguments name columns that never enter the log
-- (users' password_hash: no rule may read it, so no event needs it).
CREATE FUNCTION baas.record_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  left_out text[] := coalesce(TG_ARGV, '{}');  -- TG_ARGV is null without arguments
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO baas.changes (collection, record_id, op, new)
    VALUES (TG_TABLE_NAME, NEW.id, 'I', to_jsonb(NEW) - left_out);
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO baas.changes (collection, record_id, op, new, old)
    VALUES (TG_TABLE_NAME, NEW.id, 'U', to_jsonb(NEW) - left_out, to_jsonb(OLD) - left_out);
  ELSE
    INSERT INTO baas.changes (collection, record_id, op, old)
    VALUES (TG_TABLE_NAME, OLD.id, 'D', to_jsonb(OLD) - left_out);
  END IF;
  PERFORM pg_notify('baas_changes', '');  -- one per transaction: PostgreSQL folds duplicates
  RETURN NULL;
END $$;

-- Number the committed, unnumbered changes (in the order they were written, which is commit
-- order for any one record: a second writer of a row waits for the first to commit); returns the
-- last change id given out. Sequencers take turns on the state row, and each numbers what it
-- sees in a snapshot taken after its turn began, so numbers are never given twice and a number
-- once seen is final.
CREATE FUNCTION baas.sequence_changes() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  last bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM baas.changes WHERE pos IS NULL) THEN
    RETURN (SELECT last_pos FROM baas.change_state WHERE id = 1);
  END IF;
  SELECT last_pos INTO last FROM baas.change_state WHERE id = 1 FOR UPDATE;
  WITH pending AS (
    SELECT id, row_number() OVER (ORDER BY id) AS n FROM baas.changes WHERE pos IS NULL
  ), numbered AS (
    UPDATE baas.changes c SET pos = last + pending.n FROM pending WHERE c.id = pending.id
    RETURNING c.pos
  )
  UPDATE baas.change_state SET last_pos = coalesce((SELECT max(pos) FROM numbered), last_pos)
  WHERE id = 1 RETURNING last_pos INTO last;
  RETURN last;
END $$;

-- Sequence, then the changes after `after` (json as text: the reader decodes only what it uses).
CREATE FUNCTION baas.next_changes(after bigint, max_rows int)
RETURNS TABLE (pos bigint, collection text, record_id uuid, op text, new text, old text)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM baas.sequence_changes();
  RETURN QUERY SELECT c.pos, c.collection, c.record_id, c.op::text, c.new::text, c.old::text
    FROM baas.changes c WHERE c.pos > after ORDER BY c.pos LIMIT max_rows;
END $$;

-- Existing collection tables get the trigger (new ones get it with their table).
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN
    SELECT tg.tgrelid::regclass AS rel, replace(tg.tgname, '_touch', '_changes') AS name,
           c.relname AS table_name
    FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
    WHERE tg.tgfoid = 'baas.touch_updated'::regproc
  LOOP
    EXECUTE format(
      'CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW '
      'EXECUTE FUNCTION baas.record_changed(%s)',
      t.name, t.rel, CASE WHEN t.table_name = 'users' THEN '''password_hash''' ELSE '' END);
  END LOOP;
END $$;

-- Who is in which channel, per instance; an instance refreshes `seen` while it runs, and the
-- members of one that stopped refreshing are dropped by the others.
CREATE TABLE baas.presence (
  member uuid PRIMARY KEY,
  instance uuid NOT NULL,
  channel text NOT NULL,
  user_id uuid,
  meta jsonb NOT NULL DEFAULT '{}',
  joined timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX presence_channel ON baas.presence (channel);
CREATE INDEX presence_instance ON baas.presence (instance);

CREATE TABLE baas.instances (
  id uuid PRIMARY KEY,
  seen timestamptz NOT NULL DEFAULT now()
);
