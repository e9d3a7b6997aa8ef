-- _ATTEMPTS
SELECT number, attempted_at, status_code, error, response_ms, response FROM webhook_attempts WHERE delivery_id = $1 ORDER BY number

-- _COUNT
SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND company_id = $2 AND ($3::text IS NULL OR status = $3)

-- _LIST
SELECT id, endpoint_id, company_id, event_id, event_type, run_id, sequence, payload, status, attempt_count, schedule_base, next_attempt_at, last_attempt_at, last_status_code, last_error, last_response_ms, succeeded_at, created_at FROM webhook_deliveries WHERE endpoint_id = $1 AND company_id = $2 AND ($3::text IS NULL OR status = $3)
ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5

-- _RECOVER
UPDATE webhook_deliveries
SET status = 'pending', next_attempt_at = $5, schedule_base = attempt_count, updated_at = now()
WHERE endpoint_id = $1 AND company_id = $2 AND status IN ('failed', 'exhausted')
  AND created_at >= $3 AND ($4::timestamptz IS NULL OR created_at < $4)

-- _REQUEUE_ONE
UPDATE webhook_deliveries
SET status = 'pending', next_attempt_at = $4, schedule_base = attempt_count, updated_at = now()
WHERE id = $1 AND endpoint_id = $2 AND company_id = $3
RETURNING id, endpoint_id, company_id, event_id, event_type, run_id, sequence, payload, status, attempt_count, schedule_base, next_attempt_at, last_attempt_at, last_status_code, last_error, last_response_ms, succeeded_at, created_at

-- _SELECT
SELECT id, endpoint_id, company_id, event_id, event_type, run_id, sequence, payload, status, attempt_count, schedule_base, next_attempt_at, last_attempt_at, last_status_code, last_error, last_response_ms, succeeded_at, created_at FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2 AND company_id = $3
