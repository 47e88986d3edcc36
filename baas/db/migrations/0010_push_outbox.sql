-- The development push outbox: each delivery through an app with "provider": "outbox" in the
-- `push.apps` setting is `sent` and recorded here instead, with the request APNs or FCM would
-- have received (headers and JSON body; the device token is left out, `token_end` names it).
-- Entries are trimmed after a retention (baas/push/outbox.py) and go with their message.

CREATE TABLE baas.push_outbox (
  id uuid PRIMARY KEY,                -- also the delivery's provider_id
  message_id uuid NOT NULL REFERENCES baas.push_messages (id) ON DELETE CASCADE,
  device_id uuid NOT NULL,
  user_id uuid,                       -- the device's owner when it was sent to
  install_id text,
  platform text NOT NULL,
  app text NOT NULL,                  -- the outbox app's name in push.apps
  app_id text NOT NULL,               -- the app the device registered for
  token_end text NOT NULL,
  locale text,
  title text NOT NULL DEFAULT '',     -- the texts the device got (its locale's)
  body text NOT NULL DEFAULT '',
  headers jsonb NOT NULL DEFAULT '{}', -- APNs request headers (apns-push-type, ...)
  payload jsonb NOT NULL,             -- the APNs JSON body, or FCM's {"message": ...}
  created timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_outbox_created ON baas.push_outbox (created, id);
CREATE INDEX push_outbox_user ON baas.push_outbox (user_id, created) WHERE user_id IS NOT NULL;
CREATE INDEX push_outbox_message ON baas.push_outbox (message_id);
