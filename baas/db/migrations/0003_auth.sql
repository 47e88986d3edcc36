-- Auth: the install's secret check, signing keys, runtime settings, superusers, sessions with
-- rotating refresh tokens, one-time tokens, external identities, TOTP, the mail outbox and rate
-- limits. Tokens and codes are stored as SHA-256 (they are 256-bit random); secrets that must be
-- read back (TOTP seeds, private keys, SMTP passwords, the grace-window refresh token) are sealed
-- with the install's secret key, which never enters the database.

-- Proves the secret key in use is the one this database was set up with (an HMAC of a constant).
CREATE TABLE baas.install (
  id int PRIMARY KEY CHECK (id = 1),
  key_check bytea NOT NULL,
  created timestamptz NOT NULL DEFAULT now()
);

-- Access-token signing keys (Ed25519). Signing uses the newest key whose active_from has passed
-- (new keys are published a little before use); retired keys verify until their tokens expire.
CREATE TABLE baas.signing_keys (
  kid text PRIMARY KEY,
  algorithm text NOT NULL,
  private_key bytea NOT NULL,  -- sealed PKCS#8
  public_jwk jsonb NOT NULL,
  created timestamptz NOT NULL DEFAULT now(),
  active_from timestamptz NOT NULL DEFAULT now(),
  retired timestamptz
);

-- Runtime settings (SMTP, OAuth providers, auth options): plain values in `value`, secret ones
-- sealed in `sealed`.
CREATE TABLE baas.settings (
  name text PRIMARY KEY,
  value jsonb,
  sealed bytea,
  updated timestamptz NOT NULL DEFAULT now(),
  updated_by text NOT NULL DEFAULT 'system'
);

CREATE TABLE baas.superusers (
  id uuid PRIMARY KEY DEFAULT baas.uuid7(),
  email text NOT NULL UNIQUE,
  password_hash text NOT NULL,
  created timestamptz NOT NULL DEFAULT now(),
  last_sign_in timestamptz
);

-- A signed-in device. `subject` is a users id or a superusers id (per `role`).
CREATE TABLE baas.sessions (
  id uuid PRIMARY KEY DEFAULT baas.uuid7(),
  subject uuid NOT NULL,
  role text NOT NULL CHECK (role IN ('user', 'superuser')),
  amr text[] NOT NULL DEFAULT '{}',
  current_token bytea,  -- the current refresh token, sealed: answered again in the grace window
  rotated timestamptz,
  created timestamptz NOT NULL DEFAULT now(),
  last_used timestamptz NOT NULL DEFAULT now(),
  expires timestamptz NOT NULL,      -- idle expiry, pushed forward by each refresh
  max_expires timestamptz NOT NULL,  -- absolute expiry
  revoked timestamptz,
  revoked_reason text,
  user_agent text,
  ip text
);
CREATE INDEX sessions_subject ON baas.sessions (subject);
CREATE INDEX sessions_revoked ON baas.sessions (revoked) WHERE revoked IS NOT NULL;

-- Every refresh token a session was given; the one with retired IS NULL is current.
CREATE TABLE baas.refresh_tokens (
  hash bytea PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES baas.sessions (id) ON DELETE CASCADE,
  created timestamptz NOT NULL DEFAULT now(),
  retired timestamptz
);
CREATE INDEX refresh_tokens_session ON baas.refresh_tokens (session_id);

-- Rotate a refresh token in one round trip. Outcomes:
--   rotated  the presented token was current: it is retired, `new_hash` is current now
--   grace    it was retired within `grace` (two requests raced): the current token is returned
--   reused   it was retired before that: the session is revoked (a stolen token was replayed)
--   revoked  the session was revoked or has expired
--   unknown  no such token
CREATE FUNCTION baas.refresh_session(
  presented bytea, new_hash bytea, sealed_token bytea, idle interval, grace interval
) RETURNS TABLE (outcome text, session_id uuid, subject uuid, role text, amr text[], token bytea)
LANGUAGE plpgsql AS $$
DECLARE
  sid uuid;
  retired_at timestamptz;
  s baas.sessions;
BEGIN
  SELECT t.session_id INTO sid FROM baas.refresh_tokens t WHERE t.hash = presented;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'unknown', NULL::uuid, NULL::uuid, NULL::text, NULL::text[], NULL::bytea;
    RETURN;
  END IF;
  -- The session row lock orders concurrent refreshes; re-read the token after taking it.
  SELECT * INTO s FROM baas.sessions WHERE id = sid FOR UPDATE;
  SELECT t.retired INTO retired_at FROM baas.refresh_tokens t WHERE t.hash = presented;
  IF s.revoked IS NOT NULL OR s.expires <= now() OR s.max_expires <= now() THEN
    RETURN QUERY SELECT 'revoked', s.id, s.subject, s.role, s.amr, NULL::bytea;
    RETURN;
  END IF;
  IF retired_at IS NULL THEN
    UPDATE baas.refresh_tokens SET retired = now() WHERE hash = presented;
    INSERT INTO baas.refresh_tokens (hash, session_id) VALUES (new_hash, s.id);
    UPDATE baas.sessions
       SET current_token = sealed_token, rotated = now(), last_used = now(),
           expires = least(now() + idle, max_expires)
     WHERE id = s.id;
    RETURN QUERY SELECT 'rotated', s.id, s.subject, s.role, s.amr, NULL::bytea;
    RETURN;
  END IF;
  IF retired_at > now() - grace AND s.current_token IS NOT NULL THEN
    RETURN QUERY SELECT 'grace', s.id, s.subject, s.role, s.amr, s.current_token;
    RETURN;
  END IF;
  UPDATE baas.sessions SET revoked = now(), revoked_reason = 'refresh_token_reused', current_token = NULL
   WHERE id = s.id;
  PERFORM pg_notify('baas_sessions', s.subject::text);
  RETURN QUERY SELECT 'reused', s.id, s.subject, s.role, s.amr, NULL::bytea;
END $$;

-- Revoke sessions of one subject (all, or all but `keep`); tells every instance.
CREATE FUNCTION baas.revoke_sessions(who uuid, reason text, keep uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  UPDATE baas.sessions SET revoked = now(), revoked_reason = reason, current_token = NULL
   WHERE subject = who AND revoked IS NULL AND (keep IS NULL OR id <> keep);
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    PERFORM pg_notify('baas_sessions', who::text);
  END IF;
  RETURN n;
END $$;

-- Single-use, expiring tokens: email verification, password reset, email change, sign-in
-- challenges (MFA) and the first-run setup token. Redeeming is one UPDATE ... WHERE used IS NULL.
CREATE TABLE baas.auth_tokens (
  hash bytea PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('verify', 'reset', 'email_change', 'mfa', 'setup')),
  subject uuid,
  email text,  -- the address it was sent to (for email_change: the new address)
  data jsonb,
  attempts int NOT NULL DEFAULT 0,
  created timestamptz NOT NULL DEFAULT now(),
  expires timestamptz NOT NULL,
  used timestamptz
);
CREATE INDEX auth_tokens_subject ON baas.auth_tokens (subject, kind);
CREATE INDEX auth_tokens_expires ON baas.auth_tokens (expires);

-- Accounts at OpenID Connect providers, keyed by (provider, subject), never by email.
CREATE TABLE baas.identities (
  provider text NOT NULL,
  subject text NOT NULL,
  user_id uuid NOT NULL,
  email text,
  created timestamptz NOT NULL DEFAULT now(),
  last_sign_in timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_user ON baas.identities (user_id);

-- TOTP second factor (for users and superusers alike) and its recovery codes.
CREATE TABLE baas.totp (
  subject uuid PRIMARY KEY,
  secret bytea NOT NULL,  -- sealed
  confirmed timestamptz,
  last_step bigint NOT NULL DEFAULT 0,  -- the last time step accepted: a code works once
  created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE baas.recovery_codes (
  subject uuid NOT NULL,
  hash bytea NOT NULL,
  used timestamptz,
  PRIMARY KEY (subject, hash)
);

-- Mail: every message is kept here; with SMTP configured it is sent (and retried) from here,
-- without SMTP it stays as the development outbox. Bodies are sealed (they hold links).
CREATE TABLE baas.mail (
  id uuid PRIMARY KEY DEFAULT baas.uuid7(),
  created timestamptz NOT NULL DEFAULT now(),
  recipient text NOT NULL,
  subject text NOT NULL,
  template text NOT NULL,
  body bytea,
  status text NOT NULL CHECK (status IN ('outbox', 'pending', 'sent', 'failed')),
  attempts int NOT NULL DEFAULT 0,
  next_attempt timestamptz NOT NULL DEFAULT now(),
  sent timestamptz,
  error text
);
CREATE INDEX mail_pending ON baas.mail (next_attempt) WHERE status = 'pending';
CREATE INDEX mail_created ON baas.mail (created);

-- Fixed-window counters shared by every instance.
CREATE TABLE baas.rate_limits (
  key text PRIMARY KEY,
  window_start timestamptz NOT NULL,
  hits int NOT NULL
);

-- Installed on the users table: a deleted user's sessions, tokens, identities and second factor
-- go with it; disabling a user ends their sessions.
CREATE FUNCTION baas.auth_user_changed() RETURNS trigger
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
    RETURN OLD;
  END IF;
  IF NEW.disabled AND NOT OLD.disabled THEN
    PERFORM baas.revoke_sessions(NEW.id, 'user_disabled');
  END IF;
  RETURN NEW;
END $$;
