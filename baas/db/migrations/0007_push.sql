-- Push notifications: devices, topic subscriptions, messages and per-device deliveries.
--
-- A message is written with its fan-out job in one transaction; the fan-out resolves its
-- targets to devices (one INSERT ... SELECT into `push_deliveries`) and splits them into
-- delivery jobs by device id range. A delivery row is `queued`, `sending` while its send is in
-- flight, then `sent` or `failed` (with the provider's reason), or `retrying` after a transient
-- error; so a crash re-sends at most the sends that were in flight.

CREATE TABLE baas.push_devices (
  id uuid PRIMARY KEY,
  user_id uuid,                       -- the signed-in user (null: an anonymous install)
  install_id text,                    -- an anonymous install's own id (its devices and topics)
  platform text NOT NULL CHECK (platform IN ('ios', 'android')),
  token text NOT NULL,
  app_id text NOT NULL,               -- the bundle id / Firebase app it was registered for
  locale text,
  name text,
  enabled boolean NOT NULL DEFAULT true,
  disabled_reason text,               -- why the provider said the token is dead
  created timestamptz NOT NULL DEFAULT now(),
  updated timestamptz NOT NULL DEFAULT now(),
  UNIQUE (platform, token)
);
CREATE INDEX push_devices_user ON baas.push_devices (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX push_devices_install ON baas.push_devices (install_id) WHERE install_id IS NOT NULL;

CREATE TABLE baas.push_topic_devices (
  topic text NOT NULL,
  device_id uuid NOT NULL REFERENCES baas.push_devices (id) ON DELETE CASCADE,
  created timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, device_id)
);
CREATE INDEX push_topic_devices_device ON baas.push_topic_devices (device_id);

CREATE TABLE baas.push_topic_users (
  topic text NOT NULL,
  user_id uuid NOT NULL,
  created timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, user_id)
);
CREATE INDEX push_topic_users_user ON baas.push_topic_users (user_id);

CREATE TABLE baas.push_messages (
  id uuid PRIMARY KEY,
  target jsonb NOT NULL,              -- {users, devices, topics, filter}
  notification jsonb NOT NULL,        -- title, body, data, badge, ..., locales
  send_at timestamptz NOT NULL DEFAULT now(),
  state text NOT NULL DEFAULT 'scheduled'
    CHECK (state IN ('scheduled', 'sending', 'done', 'cancelled')),
  total int,                          -- devices targeted (set by the fan-out)
  created timestamptz NOT NULL DEFAULT now(),
  created_by text NOT NULL,
  fanned_out timestamptz,
  finished timestamptz
);
CREATE INDEX push_messages_created ON baas.push_messages (created);

CREATE TABLE baas.push_deliveries (
  message_id uuid NOT NULL REFERENCES baas.push_messages (id) ON DELETE CASCADE,
  device_id uuid NOT NULL,
  status text NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'retrying')),
  attempts int NOT NULL DEFAULT 0,
  reason text,                        -- the provider's reason for the last failure
  provider_id text,                   -- the provider's id of the sent notification
  updated timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (message_id, device_id)
);

-- A deleted user's devices and topic subscriptions go with them (as their sessions do).
CREATE OR REPLACE FUNCTION baas.auth_user_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM baas.revoke_sessions(OLD.id, 'user_deleted');
    DELETE FROM baas.refresh_tokens t USING baas.sessions s
     WHERE t.session_id = s.id AND s.subject = OLD.id;
    DELETE FROM baas.auth_tokens WHERE subject = OLD.id;
    DELETE FROM baas.identities WHERE user_id = OLD.id;
    DELETE FROM baas.totp WHERE subject = OLD.id;
    DELETE FROM baas.recovery_codes WHERE subject = OLD.id;
    DELETE FROM baas.push_devices WHERE user_id = OLD.id;
    DELETE FROM baas.push_topic_users WHERE user_id = OLD.id;
    RETURN OLD;
  END IF;
  IF NEW.disabled AND NOT OLD.disabled THEN
    PERFORM baas.revoke_sessions(NEW.id, 'user_disabled');
  END IF;
  RETURN NEW;
END $$;

-- Push triggers: collections whose writes may send a notification (from the schema file). The
-- change-log trigger enqueues a `push.trigger` job, in the writing transaction, for writes to
-- these collections only.
CREATE TABLE baas.push_trigger_collections (
  collection text PRIMARY KEY
);

CREATE OR REPLACE FUNCTION baas.record_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  left_out text[] := coalesce(TG_ARGV, '{}');  -- TG_ARGV is null without arguments
  n jsonb;
  o jsonb;
BEGIN
  IF TG_OP = 'INSERT' THEN
    n := to_jsonb(NEW) - left_out;
    INSERT INTO baas.changes (collection, record_id, op, new)
    VALUES (TG_TABLE_NAME, NEW.id, 'I', n);
  ELSIF TG_OP = 'UPDATE' THEN
    n := to_jsonb(NEW) - left_out;
    o := to_jsonb(OLD) - left_out;
    INSERT INTO baas.changes (collection, record_id, op, new, old)
    VALUES (TG_TABLE_NAME, NEW.id, 'U', n, o);
  ELSE
    INSERT INTO baas.changes (collection, record_id, op, old)
    VALUES (TG_TABLE_NAME, OLD.id, 'D', to_jsonb(OLD) - left_out);
    DELETE FROM baas.files WHERE collection = TG_TABLE_NAME AND record_id = OLD.id;
  END IF;
  PERFORM pg_notify('baas_changes', '');  -- one per transaction: PostgreSQL folds duplicates
  IF n IS NOT NULL
     AND EXISTS (SELECT 1 FROM baas.push_trigger_collections WHERE collection = TG_TABLE_NAME) THEN
    INSERT INTO baas.jobs (kind, payload) VALUES (
      'push.trigger',
      jsonb_build_object('collection', TG_TABLE_NAME, 'op', lower(TG_OP), 'new', n, 'old', o));
    PERFORM pg_notify('baas_jobs', '');
  END IF;
  RETURN NULL;
END $$;
