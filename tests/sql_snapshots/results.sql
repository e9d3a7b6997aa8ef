-- _RECORD_BILL
WITH run AS (
    UPDATE eval_runs
    SET agent_input_tokens = $2, agent_output_tokens = $3, persona_input_tokens = $4, persona_output_tokens
        = $5, agent_cost_cents = $6, persona_cost_cents = $7, judge_cost_cents = $8,
        total_cost_cents = $9, uncollected_cents = $10, queue_status = 'done', done_at = now(),
        updated_at = now(), last_event_seq = last_event_seq + cardinality($11::uuid[])
    WHERE id = $1 AND queue_status <> 'done'
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
SELECT e.event_id, e.topic, run.id::text, e.type, run.company_id, run.id, run.last_event_seq - cardinality($11::uuid[]) + e.ord,
       e.payload || jsonb_build_object('sequence', run.last_event_seq - cardinality($11::uuid[]) + e.ord, 'company_id', run.company_id, 'data', jsonb_build_object('id', run.id, 'case_id', run.case_id, 'suite_id', run.suite_id, 'suite_run_id', run.suite_run_id, 'status', run.status, 'queue_status', run.queue_status, 'termination_reason', run.termination_reason, 'score', run.score, 'pass_fail', run.pass_fail, 'total_cost_cents', run.total_cost_cents, 'error_code', run.error_code, 'labels', run.labels)), e.traceparent, e.created_at
FROM run, unnest($11::uuid[], $12::text[], $13::text[], $14::jsonb[], $15::text[],
                 $16::timestamptz[])
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
       dispatched_at, active_ms, handed_back, iteration, suite_seq, pg_notify('agent_eval_runs',
       run.id::text) AS notified
FROM run

-- _RECORD_EVALUATION
WITH run AS (
    UPDATE eval_runs
    SET evaluation = $2, score = $3, pass_fail = $4, judge_input_tokens = $5, judge_output_tokens = $6,
        judge_cost_microcents = $7, judge_rate_card_version = $8, scored_at = now(), updated_at =
        now(), last_event_seq = last_event_seq + cardinality($9::uuid[])
    WHERE id = $1 AND scored_at IS NULL AND status IN ('completed')
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

-- _RECORD_UNCOLLECTED
UPDATE eval_runs SET uncollected_cents = $2 WHERE id = $1

-- _SETTLE
WITH run AS (
    UPDATE eval_runs
    SET status = $4, termination_reason = $5, error = $6, error_code = $7, active_ms = greatest(active_ms,
        $8), ended_at = now(), duration_ms = greatest(0, (extract(epoch FROM now() - started_at) *
        1000)::int), evaluation = $9, score = $10, pass_fail = $11, scored_at = CASE WHEN
        $12::boolean THEN now() END, agent_input_tokens = $13, agent_output_tokens = $14,
        persona_input_tokens = $15, persona_output_tokens = $16, agent_cost_cents = $17,
        persona_cost_cents = $18, judge_cost_cents = $19, total_cost_cents = $20, uncollected_cents
        = $21, queue_status = 'done', done_at = now(), updated_at = now(), last_event_seq =
        last_event_seq + cardinality($22::uuid[])
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
SELECT e.event_id, e.topic, run.id::text, e.type, run.company_id, run.id, run.last_event_seq - cardinality($22::uuid[]) + e.ord,
       e.payload || jsonb_build_object('sequence', run.last_event_seq - cardinality($22::uuid[]) + e.ord, 'company_id', run.company_id, 'data', jsonb_build_object('id', run.id, 'case_id', run.case_id, 'suite_id', run.suite_id, 'suite_run_id', run.suite_run_id, 'status', run.status, 'queue_status', run.queue_status, 'termination_reason', run.termination_reason, 'score', run.score, 'pass_fail', run.pass_fail, 'total_cost_cents', run.total_cost_cents, 'error_code', run.error_code, 'labels', run.labels)), e.traceparent, e.created_at
FROM run, unnest($22::uuid[], $23::text[], $24::text[], $25::jsonb[], $26::text[],
                 $27::timestamptz[])
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
       dispatched_at, active_ms, handed_back, iteration, suite_seq, pg_notify('agent_eval_runs',
       run.id::text) AS notified
FROM run
