-- _COUNT_STUCK
SELECT
    count(*) FILTER (WHERE queue_status = 'pending' AND status = 'queued'
                     AND released_at < now() - interval '30 seconds') AS unclaimed,
    count(*) FILTER (WHERE queue_status = 'claimed' AND status IN ('queued', 'running')
                     AND lease_expires_at < now()) AS lease_expired,
    count(*) FILTER (WHERE queue_status <> 'done' AND status IN ('cancelled', 'completed', 'failed')
                     AND ended_at < now() - interval '2 minutes') AS unfinalised
FROM eval_runs
WHERE queue_status <> 'done'

-- _DONE_AMONG
SELECT id FROM eval_runs WHERE id = ANY($1::uuid[]) AND queue_status = 'done'

-- _EVENT_SEQS
SELECT id, last_event_seq FROM eval_runs WHERE id = ANY($1::uuid[])

-- _INSERT_RUN
INSERT INTO eval_runs (id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, config,
                       agent_overrides, labels, released_at, position, agent_model, persona_model,
                       iteration, last_event_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $11 THEN now() END, $12, $13, $14, $15,
        0)
RETURNING id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq

-- _LOCK_RUN
SELECT id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq FROM eval_runs WHERE id = $1 FOR NO KEY UPDATE

-- _MARK_SWEPT
UPDATE eval_runs SET last_swept_at = now() WHERE id = $1

-- _PROGRESS
SELECT status, queue_status FROM eval_runs WHERE id = $1 AND company_id = $2

-- _SELECT_COMPANY_RUN
SELECT id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq FROM eval_runs WHERE id = $1 AND company_id = $2

-- _SELECT_RUN
SELECT id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq FROM eval_runs WHERE id = $1

-- _UNFINALISED
SELECT id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, mode, config, agent_overrides, labels, status, queue_status, termination_reason, released_at, position, claimed_by, lease_expires_at, attempt, cancel_requested_at, last_event_seq, started_at, ended_at, duration_ms, done_at, score, pass_fail, evaluation, agent_model, persona_model, agent_input_tokens, agent_output_tokens, persona_input_tokens, persona_output_tokens, judge_input_tokens, judge_output_tokens, agent_cost_cents, persona_cost_cents, judge_cost_cents, total_cost_cents, uncollected_cents, error, error_code, created_at, updated_at, judge_cost_microcents, judge_rate_card_version, scored_at, last_swept_at, dispatched_at, active_ms, handed_back, iteration, suite_seq FROM eval_runs
WHERE queue_status <> 'done' AND status IN ('cancelled', 'completed', 'failed')
  AND ended_at < now() - make_interval(secs => $1)
  AND (last_swept_at IS NULL OR last_swept_at < now() - make_interval(secs => $1))
ORDER BY ended_at
LIMIT $2
FOR UPDATE SKIP LOCKED
