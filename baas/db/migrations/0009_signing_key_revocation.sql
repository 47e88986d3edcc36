-- A signing key can be revoked (after a leak): it then verifies nothing, on every instance at
-- once. A retired key verifies only tokens issued before `retired`, within their lifetime.
ALTER TABLE baas.signing_keys ADD COLUMN revoked timestamptz;
