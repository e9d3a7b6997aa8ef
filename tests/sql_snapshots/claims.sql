-- _CHECK
SELECT CASE WHEN r.status = 'running' THEN 'held'
            WHEN r.error_code = 'EXECUTOR_LOST' THEN 'lost'
            ELSE 'ended' END AS tenure FROM eval_runs AS r WHERE r.id = $1 AND r.claimed_by = $2 AND r.attempt = $3

-- _CLAIM
WITH run AS (
    UPDATE eval_runs
    SET status = 'running', queue_status = 'claimed', claimed_by = $2, attempt = attempt + 1,
        lease_expires_at = now() + make_interval(secs => $3), started_at = coalesce(started_at,
        now()), updated_at = now(), last_event_seq = last_event_seq + cardinality($5::uuid[])
    WHERE id = $1 AND released_at IS NOT NULL AND status IN ('queued', 'running') AND (queue_status = 'pending' OR
        lease_expires_at < now()) AND attempt - handed_back < $4
    RETURNING id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config,
        agent_overrides, labels, status, queue_status, termination_reason, released_at, position,
        claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at,
        ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model,
        agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens,
        judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents,
        judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at,
        updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at,
        dispatched_at, active_ms, handed_back, iteration, suite_seq
), announced AS (
INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                    created_at)
SELECT e.event_id, e.topic, run.id::text, e.type, run.company_id, run.id, run.last_event_seq - cardinality($5::uuid[]) + e.ord,
       e.payload || jsonb_build_object('sequence', run.last_event_seq - cardinality($5::uuid[]) + e.ord, 'company_id', run.company_id, 'data', jsonb_build_object('id', run.id, 'case_id', run.case_id, 'suite_id', run.suite_id, 'suite_run_id', run.suite_run_id, 'status', run.status, 'queue_status', run.queue_status, 'termination_reason', run.termination_reason, 'score', run.score, 'pass_fail', run.pass_fail, 'total_cost_cents', run.total_cost_cents, 'error_code', run.error_code, 'labels', run.labels)), e.traceparent, e.created_at
FROM run, unnest($5::uuid[], $6::text[], $7::text[], $8::jsonb[], $9::text[],
                 $10::timestamptz[])
          WITH ORDINALITY AS e (event_id, topic, type, payload, traceparent, created_at, ord)
)
SELECT id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config,
       agent_overrides, labels, status, queue_status, termination_reason, released_at, position,
       claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at,
       ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model,
       agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens,
       judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents,
       judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at,
       updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at,
       dispatched_at, active_ms, handed_back, iteration, suite_seq
FROM run

-- _EXTEND
WITH held AS (
    SELECT * FROM unnest($2::uuid[], $3::int[]) AS held (id, attempt)
), locked AS MATERIALIZED (
    SELECT r.id FROM eval_runs AS r JOIN held ON r.id = held.id AND r.attempt = held.attempt
    WHERE r.claimed_by = $1 ORDER BY r.id FOR NO KEY UPDATE OF r
)
UPDATE eval_runs AS r
SET lease_expires_at = CASE WHEN r.status = 'running' THEN now() + make_interval(secs => $4)
                            ELSE r.lease_expires_at END
FROM held, locked
WHERE r.id = held.id AND locked.id = r.id AND r.attempt = held.attempt AND r.claimed_by = $1
RETURNING r.id, CASE WHEN r.status = 'running' THEN 'held'
            WHEN r.error_code = 'EXECUTOR_LOST' THEN 'lost'
            ELSE 'ended' END AS tenure

-- _FINISH
WITH run AS (
    UPDATE eval_runs
    SET status = $4, termination_reason = $5, error = $6, error_code = $7, active_ms = greatest(active_ms,
        $8), ended_at = now(), duration_ms = greatest(0, (extract(epoch FROM now() - started_at) *
        1000)::int), updated_at = now(), last_event_seq = last_event_seq + cardinality($9::uuid[])
    WHERE id = $1 AND claimed_by = $2 AND attempt = $3 AND status = 'running'
    RETURNING id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config,
        agent_overrides, labels, status, queue_status, termination_reason, released_at, position,
        claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at,
        ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model,
        agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens,
        judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents,
        judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at,
        updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at,
        dispatched_at, active_ms, handed_back, iteration, suite_seq
), announced AS (
INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                    created_at)
SELECT e.event_id, e.topic, run.id::text, e.type, run.company_id, run.id, run.last_event_seq - cardinality($9::uuid[]) + e.ord,
       e.payload || jsonb_build_object('sequence', run.last_event_seq - cardinality($9::uuid[]) + e.ord, 'company_id', run.company_id, 'data', jsonb_build_object('id', run.id, 'case_id', run.case_id, 'suite_id', run.suite_id, 'suite_run_id', run.suite_run_id, 'status', run.status, 'queue_status', run.queue_status, 'termination_reason', run.termination_reason, 'score', run.score, 'pass_fail', run.pass_fail, 'total_cost_cents', run.total_cost_cents, 'error_code', run.error_code, 'labels', run.labels)), e.traceparent, e.created_at
FROM run, unnest($9::uuid[], $10::text[], $11::text[], $12::jsonb[], $13::text[],
                 $14::timestamptz[])
          WITH ORDINALITY AS e (event_id, topic, type, payload, traceparent, created_at, ord)
)
SELECT id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config,
       agent_overrides, labels, status, queue_status, termination_reason, released_at, position,
       claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at,
       ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model,
       agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens,
       judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents,
       judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at,
       updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at,
       dispatched_at, active_ms, handed_back, iteration, suite_seq
FROM run

-- _HAND_BACK
UPDATE eval_runs
SET lease_expires_at = now(), handed_back = handed_back + 1, dispatched_at = now(), updated_at = now()
WHERE claimed_by = $1 AND status = 'running' AND queue_status = 'claimed'
RETURNING id, company_id
