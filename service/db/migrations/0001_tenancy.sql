-- Companies, their API keys, and the per-key rate-limit windows (DESIGN.md §4, §11).

CREATE TABLE companies (
    id                          uuid PRIMARY KEY,
    name                        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    balance_cents               bigint NOT NULL DEFAULT 0 CHECK (balance_cents >= 0),
    currency                    text NOT NULL DEFAULT 'usd' CHECK (currency = lower(currency)),
    is_suspended                boolean NOT NULL DEFAULT false,
    billing_email               text,
    has_payment_method          boolean NOT NULL DEFAULT false,
    auto_topup_enabled          boolean NOT NULL DEFAULT false,
    auto_topup_amount_cents     bigint CHECK (auto_topup_amount_cents > 0),
    low_balance_threshold_cents bigint CHECK (low_balance_threshold_cents >= 0),
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id                    uuid PRIMARY KEY,
    company_id            uuid NOT NULL REFERENCES companies (id),
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_sha256            bytea NOT NULL UNIQUE CHECK (length(key_sha256) = 32),
    prefix                text NOT NULL CHECK (length(prefix) = 12),
    scopes                text[] NOT NULL DEFAULT '{}',
    rate_limit_per_minute integer NOT NULL DEFAULT 60 CHECK (rate_limit_per_minute > 0),
    expires_at            timestamptz,
    revoked_at            timestamptz,
    last_used_at          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_company ON api_keys (company_id, created_at DESC);

-- Fixed 60-s windows, counted with INSERT … ON CONFLICT DO UPDATE SET n = n + 1 RETURNING n.
-- Unlogged: counters are worthless after a crash, and this keeps the hot path off the WAL.
CREATE UNLOGGED TABLE rate_limit_windows (
    api_key_id   uuid NOT NULL,
    window_start timestamptz NOT NULL,
    n            integer NOT NULL CHECK (n >= 0),
    PRIMARY KEY (api_key_id, window_start)
);
CREATE INDEX rate_limit_windows_start ON rate_limit_windows (window_start);
