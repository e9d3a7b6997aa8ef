-- _COUNT_COMPANIES
SELECT count(*) FROM companies

-- _INSERT_API_KEY
INSERT INTO api_keys (id, company_id, name, key_sha256, prefix, scopes, rate_limit_per_minute, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id, company_id, name, prefix, scopes, rate_limit_per_minute, expires_at, revoked_at, created_at

-- _INSERT_COMPANY
INSERT INTO companies (id, name, billing_email) VALUES ($1, $2, $3) RETURNING id, name, balance_cents, currency, is_suspended, billing_email, has_payment_method, auto_topup_enabled, auto_topup_amount_cents, low_balance_threshold_cents, created_at

-- _REVOKE_KEY
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = $1 AND company_id = $2 RETURNING id, company_id, name, prefix, scopes, rate_limit_per_minute, expires_at, revoked_at, created_at

-- _SELECT_API_KEYS
SELECT id, company_id, name, prefix, scopes, rate_limit_per_minute, expires_at, revoked_at, created_at FROM api_keys WHERE company_id = $1 ORDER BY created_at, id

-- _SELECT_COMPANY
SELECT id, name, balance_cents, currency, is_suspended, billing_email, has_payment_method, auto_topup_enabled, auto_topup_amount_cents, low_balance_threshold_cents, created_at FROM companies WHERE id = $1

-- _SELECT_KEY_AUTH
SELECT id, company_id, scopes, rate_limit_per_minute, expires_at, revoked_at
FROM api_keys WHERE key_sha256 = $1

-- _SELECT_KEY_AUTH_BY_ID
SELECT id, company_id, scopes, rate_limit_per_minute, expires_at, revoked_at
FROM api_keys WHERE id = $1

-- _UPDATE_COMPANY
UPDATE companies SET name = $2, is_suspended = $3, billing_email = $4, updated_at = now()
WHERE id = $1 RETURNING id, name, balance_cents, currency, is_suspended, billing_email, has_payment_method, auto_topup_enabled, auto_topup_amount_cents, low_balance_threshold_cents, created_at
