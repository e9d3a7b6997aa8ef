-- _CLAIM
WITH due AS (
    SELECT endpoint_id, min(next_attempt_at) AS oldest FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= $1
    GROUP BY endpoint_id
), ready AS (
    SELECT due.endpoint_id, due.oldest, coalesce(cap.free, $6) AS free
    FROM due LEFT JOIN unnest($4::uuid[], $5::int[]) AS cap (endpoint_id, free) USING (endpoint_id)
    WHERE coalesce(cap.free, $6) > 0
    ORDER BY due.oldest
    LIMIT $3
), chosen AS (
    SELECT picked.id FROM ready CROSS JOIN LATERAL (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.endpoint_id = ready.endpoint_id AND d.status = 'pending' AND d.next_attempt_at <= $1
        ORDER BY d.next_attempt_at
        LIMIT ready.free
        FOR UPDATE SKIP LOCKED
    ) AS picked
    LIMIT $3
)
UPDATE webhook_deliveries d SET next_attempt_at = $1 + make_interval(secs => $2), updated_at = now()
FROM chosen, webhook_endpoints e
WHERE d.id = chosen.id AND e.id = d.endpoint_id
RETURNING d.id, d.endpoint_id, d.company_id, d.event_id, d.event_type, d.run_id, d.sequence, d.payload, d.status, d.attempt_count, d.schedule_base, d.next_attempt_at, d.last_attempt_at, d.last_status_code, d.last_error, d.last_response_ms, d.succeeded_at, d.created_at, e.url, e.secret_sealed, e.previous_secret_sealed, e.previous_secret_expires_at,
          e.is_enabled AND e.deleted_at IS NULL AS endpoint_enabled

-- _INSERT
INSERT INTO webhook_deliveries (id, endpoint_id, company_id, event_id, event_type, run_id, sequence, payload,
                                next_attempt_at)
SELECT d.id, d.endpoint_id, d.company_id, d.event_id, d.event_type, d.run_id, d.sequence, d.payload, $9
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], $7::int[], $8::text[])
     AS d (id, endpoint_id, company_id, event_id, event_type, run_id, sequence, payload)
ON CONFLICT (endpoint_id, event_id) DO NOTHING
RETURNING id

-- _PURGE
DELETE FROM webhook_deliveries WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE status <> 'pending' AND updated_at < $1
    LIMIT $2)

-- _RECORD
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int[], $4::text[], $5::int[], $6::text[],
                         $7::text[], $8::timestamptz[], $9::boolean[])
         AS a (delivery_id, attempted_at, status_code, error, response_ms, response, status, next_attempt_at,
               health)
), attempt AS (
    INSERT INTO webhook_attempts (delivery_id, number, attempted_at, status_code, error, response_ms,
                                  response)
    SELECT d.id, d.attempt_count + 1, a.attempted_at, a.status_code, a.error, a.response_ms, a.response
    FROM input a JOIN webhook_deliveries d ON d.id = a.delivery_id AND d.status = 'pending'
    RETURNING delivery_id
), delivery AS (
    UPDATE webhook_deliveries d
    SET attempt_count = attempt_count + 1, status = a.status, next_attempt_at = a.next_attempt_at,
        last_attempt_at = a.attempted_at, last_status_code = a.status_code, last_error = a.error,
        last_response_ms = a.response_ms,
        succeeded_at = CASE WHEN a.status = 'succeeded' THEN a.attempted_at ELSE succeeded_at END,
        updated_at = now()
    FROM input a JOIN attempt USING (delivery_id)
    WHERE d.id = a.delivery_id
    RETURNING d.id, d.endpoint_id, d.status, a.health, a.attempted_at
), outcome AS (
    SELECT endpoint_id, bool_or(status = 'succeeded') AS healthy, min(attempted_at) AS first_failure
    FROM delivery WHERE health GROUP BY endpoint_id
), clock AS (
    UPDATE webhook_endpoints e
    SET failing_since = CASE WHEN o.healthy THEN NULL ELSE coalesce(e.failing_since, o.first_failure) END,
        updated_at = now()
    FROM outcome o
    WHERE e.id = o.endpoint_id AND (NOT o.healthy OR e.failing_since IS NOT NULL)
    RETURNING e.id, e.failing_since
)
SELECT delivery.id, delivery.status,
       CASE WHEN delivery.status = 'succeeded' OR NOT delivery.health THEN NULL
            ELSE coalesce((SELECT c.failing_since FROM clock c WHERE c.id = delivery.endpoint_id),
                          (SELECT e.failing_since FROM webhook_endpoints e WHERE e.id = delivery.endpoint_id))
       END AS failing_since
FROM delivery

-- _STOP_PENDING
UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, last_error = $2, updated_at = now()
WHERE endpoint_id = $1 AND status = 'pending'
