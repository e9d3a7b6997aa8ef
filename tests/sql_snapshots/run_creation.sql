-- _CREATE_RUN
WITH run AS (
INSERT INTO eval_runs (id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, config,
                       agent_overrides, labels, released_at, position, agent_model, persona_model,
                       iteration, last_event_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $11 THEN now() END, $12, $13, $14, $15,
        cardinality($16::uuid[]))
RETURNING id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq
),
queued AS (
INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                    created_at)
SELECT e.event_id, e.topic, run.id::text, e.type, run.company_id, run.id, run.last_event_seq - cardinality($16::uuid[]) + e.ord,
       e.payload || jsonb_build_object('sequence', run.last_event_seq - cardinality($16::uuid[]) + e.ord, 'company_id', run.company_id), e.traceparent, e.created_at
FROM run, unnest($16::uuid[], $17::text[], $18::text[], $19::jsonb[], $20::text[],
                 $21::timestamptz[])
          WITH ORDINALITY AS e (event_id, topic, type, payload, traceparent, created_at, ord)
)
SELECT id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq FROM run
