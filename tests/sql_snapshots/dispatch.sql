-- _CANCEL_PENDING
WITH done AS (
    UPDATE eval_runs
    SET status = 'cancelled', termination_reason = 'cancelled', queue_status = 'done',
        ended_at = now(), done_at = now(), cancel_requested_at = coalesce(cancel_requested_at, now()),
        updated_at = now()
    WHERE id = $1 AND queue_status = 'pending' AND status = 'queued'
    RETURNING id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq
)
SELECT id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq, pg_notify('agent_eval_runs', id::text) AS notified FROM done

-- _COMPANIES_WITH_HELD
SELECT DISTINCT company_id FROM eval_runs WHERE released_at IS NULL AND status = 'queued' LIMIT $1

-- _END_LOST
UPDATE eval_runs
SET status = 'failed', termination_reason = 'error', error_code = 'EXECUTOR_LOST', error = $2,
    ended_at = now(), duration_ms = greatest(0, (extract(epoch FROM now() - started_at) * 1000)::int),
    updated_at = now()
WHERE id = $1 AND queue_status = 'claimed' AND status IN ('queued', 'running')
  AND lease_expires_at < now()
RETURNING id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq

-- _EXPIRED_LEASES
SELECT id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq FROM eval_runs
WHERE queue_status = 'claimed' AND status IN ('queued', 'running') AND lease_expires_at < now()
  AND (attempt - handed_back >= $2 OR dispatched_at IS NULL OR dispatched_at < lease_expires_at
       OR dispatched_at < now() - make_interval(secs => $1))
ORDER BY lease_expires_at
LIMIT $3
FOR UPDATE SKIP LOCKED

-- _HAS_EXPIRED_LEASES
SELECT EXISTS (SELECT 1 FROM eval_runs WHERE queue_status = 'claimed' AND status IN ('queued', 'running') AND lease_expires_at < now()
  AND (attempt - handed_back >= $2 OR dispatched_at IS NULL OR dispatched_at < lease_expires_at
       OR dispatched_at < now() - make_interval(secs => $1)))

-- _HAS_HELD
SELECT EXISTS (
    SELECT 1 FROM eval_runs WHERE company_id = $1 AND released_at IS NULL AND status = 'queued')

-- _HAS_STALE_PENDING
SELECT EXISTS (SELECT 1 FROM eval_runs WHERE queue_status = 'pending' AND status = 'queued' AND released_at IS NOT NULL
  AND coalesce(dispatched_at, released_at) < now() - make_interval(secs => $1))

-- _LAST_REQUESTS
SELECT DISTINCT ON (o.run_id) o.run_id, o.created_at,
       NOT EXISTS (SELECT 1 FROM outbox_pending AS p WHERE p.id = o.id) AS sent,
       o.published_partition, o.published_offset
FROM outbox AS o WHERE o.run_id = ANY($1::uuid[]) AND o.type = 'agent_eval.run.requested'
ORDER BY o.run_id, o.id DESC

-- _MARK_DISPATCHED
UPDATE eval_runs SET dispatched_at = now() WHERE id = ANY($1::uuid[])

-- _OLDEST_PENDING_AGE
SELECT coalesce(extract(epoch FROM now() - min(released_at)), 0)::float8 FROM eval_runs
WHERE queue_status = 'pending' AND status = 'queued' AND released_at IS NOT NULL

-- _RELEASE_HELD
WITH released AS (
    SELECT run_id FROM release_held_runs($1, $2) AS released (run_id)
), requested AS (
INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, payload, traceparent, created_at)
SELECT e.event_id, $3, e.run_id::text, $4, $1, e.run_id,
       $5::jsonb || jsonb_build_object('id', e.event_id, 'time', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'run_id', e.run_id,
                                               'data', jsonb_build_object('run_id', e.run_id)),
       $6, e.at
FROM (SELECT agent_eval_uuid7() AS event_id, clock_timestamp() AS at, run_id FROM released) AS e
)
SELECT run_id FROM released

-- _REQUEST_CANCEL
UPDATE eval_runs SET cancel_requested_at = now(), updated_at = now()
WHERE id = $1 AND status = 'running' AND cancel_requested_at IS NULL
RETURNING id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq

-- _STALE_PENDING
SELECT id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq FROM eval_runs
WHERE queue_status = 'pending' AND status = 'queued' AND released_at IS NOT NULL
  AND coalesce(dispatched_at, released_at) < now() - make_interval(secs => $1)
ORDER BY coalesce(dispatched_at, released_at)
LIMIT $2
FOR UPDATE SKIP LOCKED
