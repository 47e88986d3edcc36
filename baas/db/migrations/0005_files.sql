-- Files: which stored object each record's file field holds, and the objects to delete.
--
-- An object is uploaded first (under a fresh key, listed in `file_cleanup` as due later, in case
-- the write never commits), then the record write references it here in its own transaction and
-- takes it off the cleanup list. Rows leave `files` when the record is deleted (the change-log
-- trigger), when its field drops the file (the write), or when the field or collection is
-- dropped (schema apply); each row that leaves puts its key on the cleanup list, due at once.
-- So an object a committed record points to is never on the list, and every other one is.

CREATE TABLE baas.files (
  key text PRIMARY KEY,             -- the object in the storage backend
  collection text NOT NULL,         -- the table (kept current across renames by schema apply)
  collection_id text NOT NULL,      -- the stable ids: schema apply drops rows of dropped fields
  field_id text NOT NULL,
  record_id uuid NOT NULL,
  name text NOT NULL,               -- the stored name: in the record, the URL and the key
  original_name text NOT NULL,      -- the client's name (sanitised), for Content-Disposition
  content_type text NOT NULL,       -- sniffed from the bytes
  size bigint NOT NULL,
  sha256 text NOT NULL,
  created timestamptz NOT NULL DEFAULT now(),
  UNIQUE (collection, record_id, name)
);
CREATE INDEX files_field ON baas.files (collection_id, field_id);

CREATE TABLE baas.file_cleanup (
  key text PRIMARY KEY,
  due timestamptz NOT NULL,
  attempts int NOT NULL DEFAULT 0,
  last_error text
);
CREATE INDEX file_cleanup_due ON baas.file_cleanup (due);

CREATE FUNCTION baas.file_dropped() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO baas.file_cleanup (key, due) VALUES (OLD.key, now())
  ON CONFLICT (key) DO UPDATE SET due = now();
  PERFORM pg_notify('baas_file_cleanup', '');
  RETURN NULL;
END $$;

CREATE TRIGGER files_dropped AFTER DELETE ON baas.files
FOR EACH ROW EXECUTE FUNCTION baas.file_dropped();

-- The change-log trigger (on every collection table) also drops a deleted record's files, in
-- the deleting transaction, whoever deletes it (REST, batch, a relation's cascade).
CREATE OR REPLACE FUNCTION baas.record_changed() RETURNS trigger
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
    DELETE FROM baas.files WHERE collection = TG_TABLE_NAME AND record_id = OLD.id;
  END IF;
  PERFORM pg_notify('baas_changes', '');  -- one per transaction: PostgreSQL folds duplicates
  RETURN NULL;
END $$;
