-- Webhooks (DESIGN.md §8): endpoint secrets sealed with a key from settings, delivery scheduling,
-- and one row per delivery attempt.
--
-- Expand only: `secret` (plain text) is no longer written; it is dropped in a later release.

ALTER TABLE webhook_endpoints ALTER COLUMN secret DROP NOT NULL;
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_secret_check;
ALTER TABLE webhook_endpoints
    ADD COLUMN secret_sealed          text,   -- Fernet token of the whsec_ secret
    ADD COLUMN previous_secret_sealed text;   -- the secret before the last rotation, until it expires

ALTER TABLE webhook_deliveries
    ADD COLUMN run_id           uuid,
    ADD COLUMN sequence         integer,
    ADD COLUMN schedule_base    integer NOT NULL DEFAULT 0 CHECK (schedule_base >= 0),
    ADD COLUMN last_response_ms integer CHECK (last_response_ms >= 0),
    ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now();
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
-- An endpoint's due deliveries, oldest first (the claim takes a few per endpoint).
CREATE INDEX webhook_deliveries_endpoint_due ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';

-- Every attempt of a delivery, for the delivery log.
CREATE TABLE webhook_attempts (
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    number       integer NOT NULL CHECK (number >= 1),
    attempted_at timestamptz NOT NULL,
    status_code  integer,
    error        text,
    response_ms  integer NOT NULL CHECK (response_ms >= 0),
    response     text,            -- the first bytes of the receiver's answer
    PRIMARY KEY (delivery_id, number)
);

-- Finished deliveries are purged after AGENT_EVAL_WEBHOOK_RETENTION_DAYS.
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated_at) WHERE status <> 'pending';
