-- _INSERT
INSERT INTO idempotency_keys (company_id, key, fingerprint, resource_type, resource_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (company_id, key) DO NOTHING

-- _LOCK_TIMEOUT
SELECT set_config('lock_timeout', $1, true)

-- _PURGE
DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE created_at < $1 LIMIT $2)

-- _SELECT
SELECT fingerprint, resource_type, resource_id FROM idempotency_keys WHERE company_id = $1 AND key = $2
