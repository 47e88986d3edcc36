-- System schema: helper functions, schema state and history, service keys.

CREATE SCHEMA IF NOT EXISTS baas;

-- Time-ordered UUID (version 7): 48 bits of Unix milliseconds, then random bits.
CREATE FUNCTION baas.uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              placing substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
      52, 1), 53, 1),
    'hex')::uuid
$$;

-- Keeps every collection's `updated` column true, whoever writes the row.
CREATE FUNCTION baas.touch_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated := now();
  RETURN NEW;
END $$;

-- Multi-relation fields are uuid[] columns; PostgreSQL has no foreign keys on arrays, so this
-- trigger does what a foreign key does: every id must exist, and is locked FOR KEY SHARE so a
-- concurrent delete of the target waits for us. Args: target table, column, constraint name.
CREATE FUNCTION baas.check_relation_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  target regclass := TG_ARGV[0]::regclass;
  col text := TG_ARGV[1];
  ids uuid[];
  found bigint;
BEGIN
  SELECT coalesce(array_agg(DISTINCT v::uuid), '{}') INTO ids
    FROM jsonb_array_elements_text(coalesce(to_jsonb(NEW) -> col, '[]')) AS v;
  IF cardinality(ids) = 0 THEN
    RETURN NEW;
  END IF;
  EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s WHERE id = ANY($1) FOR KEY SHARE) s', target)
    INTO found USING ids;
  IF found <> cardinality(ids) THEN
    RAISE EXCEPTION '% related record(s) of %.% not found', cardinality(ids) - found, TG_TABLE_NAME, col
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_ARGV[2], COLUMN = col,
            TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
  END IF;
  RETURN NEW;
END $$;

-- The other half for multi-relations: what happens to referencing rows when a target row is
-- deleted. Args: source table, column, mode (cascade | set_null | restrict), constraint name.
CREATE FUNCTION baas.relation_target_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  source regclass := TG_ARGV[0]::regclass;
  col text := TG_ARGV[1];
  mode text := TG_ARGV[2];
  referenced boolean;
BEGIN
  IF mode = 'restrict' THEN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I @> ARRAY[$1])', source, col)
      INTO referenced USING OLD.id;
    IF referenced THEN
      RAISE EXCEPTION 'record of % is still referenced by %.%', TG_TABLE_NAME, source, col
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_ARGV[3],
              TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
    END IF;
  ELSIF mode = 'cascade' THEN
    EXECUTE format('DELETE FROM %s WHERE %I @> ARRAY[$1]', source, col) USING OLD.id;
  ELSE
    EXECUTE format('UPDATE %s SET %I = array_remove(%I, $1) WHERE %I @> ARRAY[$1]', source, col, col, col)
      USING OLD.id;
  END IF;
  RETURN OLD;
END $$;

-- The live schema document (one row) and every change applied to it.
CREATE TABLE baas.schema_state (
  id int PRIMARY KEY CHECK (id = 1),
  version bigint NOT NULL,
  document json NOT NULL,  -- json, not jsonb: field order is part of the schema
  updated timestamptz NOT NULL DEFAULT now()
);
INSERT INTO baas.schema_state (id, version, document) VALUES (1, 0, '{"collections": {}}');

CREATE TABLE baas.schema_history (
  version bigint PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now(),
  applied_by text NOT NULL,
  plan json NOT NULL,
  document json NOT NULL
);

-- Service API keys; only a SHA-256 of the key is kept (keys are 256-bit random, so a slow hash
-- adds nothing but latency on every request).
CREATE TABLE baas.service_keys (
  id uuid PRIMARY KEY DEFAULT baas.uuid7(),
  name text NOT NULL,
  prefix text NOT NULL,
  hash bytea NOT NULL UNIQUE,
  created timestamptz NOT NULL DEFAULT now(),
  revoked timestamptz
);
