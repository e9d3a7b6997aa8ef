-- The outbox (the event store), webhook endpoints and deliveries, and idempotency keys.

CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- publish order
    event_id    uuid NOT NULL UNIQUE,
    topic       text NOT NULL,          -- logical name; the relay adds AGENT_EVAL_TOPIC_PREFIX
    key         text NOT NULL,          -- Kafka record key: run id, or the entity id
    type        text NOT NULL,
    company_id  uuid NOT NULL,
    run_id      uuid,
    sequence    integer CHECK (sequence >= 1),
    payload     jsonb NOT NULL,         -- the event body exactly as published
    traceparent text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    CHECK ((sequence IS NULL) OR (run_id IS NOT NULL))
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
-- SSE replay and per-run history; also guarantees one event per (run, sequence).
CREATE UNIQUE INDEX outbox_run_sequence ON outbox (run_id, sequence) WHERE sequence IS NOT NULL;

CREATE TABLE webhook_endpoints (
    id                         uuid PRIMARY KEY,
    company_id                 uuid NOT NULL REFERENCES companies (id),
    url                        text NOT NULL,
    description                text,
    event_types                text[] NOT NULL
                               DEFAULT '{agent_eval.run.done,agent_eval.suite_run.done}',
    secret                     text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    is_enabled                 boolean NOT NULL DEFAULT true,
    disabled_at                timestamptz,
    disabled_reason            text,
    failing_since              timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    deleted_at                 timestamptz
);
CREATE INDEX webhook_endpoints_company ON webhook_endpoints (company_id, id DESC) WHERE deleted_at IS NULL;

-- One durable row per (endpoint, event): the delivery log and the dead-letter queue.
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id),
    company_id       uuid NOT NULL REFERENCES companies (id),
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    payload          text NOT NULL,     -- the exact bytes signed and sent, identical on every retry
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'succeeded', 'failed', 'exhausted')),
    attempt_count    integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    next_attempt_at  timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    succeeded_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC);

CREATE TABLE idempotency_keys (
    company_id    uuid NOT NULL REFERENCES companies (id),
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint   bytea NOT NULL CHECK (length(fingerprint) = 32),
    resource_type text NOT NULL,
    resource_id   uuid NOT NULL,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Wake the relay when rows arrive: one notification per inserting statement, merged per
-- transaction by PostgreSQL, so writers pay no extra round trip.
CREATE FUNCTION notify_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agent_eval_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();
