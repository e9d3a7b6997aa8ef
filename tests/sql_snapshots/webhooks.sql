-- _COUNT
SELECT count(*) FROM webhook_endpoints WHERE company_id = $1 AND deleted_at IS NULL

-- _DELETE
UPDATE webhook_endpoints SET deleted_at = now(), is_enabled = false, updated_at = now()
WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL

-- _DISABLE
UPDATE webhook_endpoints SET is_enabled = false, disabled_at = $2, disabled_reason = $3, updated_at = now()
WHERE id = $1 AND is_enabled
RETURNING id, company_id, url, description, event_types, secret_sealed, previous_secret_sealed, previous_secret_expires_at, is_enabled, disabled_at, disabled_reason, failing_since, created_at, updated_at

-- _INSERT
INSERT INTO webhook_endpoints (id, company_id, url, description, event_types, secret_sealed, is_enabled,
                               disabled_at, disabled_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7 THEN NULL ELSE now() END,
        CASE WHEN $7 THEN NULL ELSE 'disabled by the user' END)
RETURNING id, company_id, url, description, event_types, secret_sealed, previous_secret_sealed, previous_secret_expires_at, is_enabled, disabled_at, disabled_reason, failing_since, created_at, updated_at

-- _LIST
SELECT id, company_id, url, description, event_types, secret_sealed, previous_secret_sealed, previous_secret_expires_at, is_enabled, disabled_at, disabled_reason, failing_since, created_at, updated_at FROM webhook_endpoints WHERE company_id = $1 AND deleted_at IS NULL
ORDER BY id DESC LIMIT $2 OFFSET $3

-- _ROTATE
UPDATE webhook_endpoints
SET previous_secret_sealed = secret_sealed, previous_secret_expires_at = now() + make_interval(secs => $4),
    secret_sealed = $3, updated_at = now()
WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL
RETURNING id, company_id, url, description, event_types, secret_sealed, previous_secret_sealed, previous_secret_expires_at, is_enabled, disabled_at, disabled_reason, failing_since, created_at, updated_at

-- _SELECT
SELECT id, company_id, url, description, event_types, secret_sealed, previous_secret_sealed, previous_secret_expires_at, is_enabled, disabled_at, disabled_reason, failing_since, created_at, updated_at FROM webhook_endpoints WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL

-- _SELECT_FOR_UPDATE
SELECT id, company_id, url, description, event_types, secret_sealed, previous_secret_sealed, previous_secret_expires_at, is_enabled, disabled_at, disabled_reason, failing_since, created_at, updated_at FROM webhook_endpoints WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL FOR UPDATE

-- _SUBSCRIBERS_AND_RUNS
SELECT s.endpoint_ids, run.*
FROM unnest($1::uuid[], $2::text[], $3::uuid[]) WITH ORDINALITY AS e (company_id, type, run_id, ord)
CROSS JOIN LATERAL (
    SELECT array(
               SELECT w.id FROM webhook_endpoints w
               WHERE w.company_id = e.company_id AND w.is_enabled AND w.deleted_at IS NULL
                 AND e.type = ANY (w.event_types)
               ORDER BY w.id
           ) AS endpoint_ids
    OFFSET 0
) AS s
LEFT JOIN LATERAL (
    SELECT id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq FROM eval_runs WHERE id = e.run_id AND cardinality(s.endpoint_ids) > 0 LIMIT 1
) AS run ON true
ORDER BY e.ord

-- _UPDATE
UPDATE webhook_endpoints
SET url = $3, description = $4, event_types = $5, is_enabled = $6,
    disabled_at = CASE WHEN $6 THEN NULL WHEN is_enabled THEN now() ELSE disabled_at END,
    disabled_reason = CASE WHEN $6 THEN NULL WHEN is_enabled THEN 'disabled by the user'
                           ELSE disabled_reason END,
    failing_since = CASE WHEN $6 AND NOT is_enabled THEN NULL ELSE failing_since END,
    updated_at = now()
WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL
RETURNING id, company_id, url, description, event_types, secret_sealed, previous_secret_sealed, previous_secret_expires_at, is_enabled, disabled_at, disabled_reason, failing_since, created_at, updated_at
