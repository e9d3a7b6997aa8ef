-- _COUNT
SELECT count(*) FROM suite_runs WHERE company_id = $1 AND suite_id = $2

-- _COUNT_DONE
WITH counted AS (
    UPDATE suite_runs
    SET done_runs = done_runs + 1,
        done_at = CASE WHEN done_runs + 1 >= total_runs THEN now() ELSE done_at END
    WHERE id = $1 AND EXISTS (SELECT 1 FROM eval_runs WHERE id = $2 AND suite_seq IS NULL)
    RETURNING done_runs, total_runs
), numbered AS (
    UPDATE eval_runs SET suite_seq = counted.done_runs FROM counted WHERE id = $2
    RETURNING suite_seq
)
SELECT counted.done_runs, counted.total_runs FROM counted, numbered

-- _INSERT
INSERT INTO suite_runs (id, company_id, suite_id, agent_overrides, labels, total_runs, parallelism,
                        iterations, rerun_of)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id, company_id, suite_id, agent_overrides, labels, total_runs, parallelism, iterations, done_runs, rerun_of, cancel_requested_at, created_at, done_at

-- _LATEST_DONE
SELECT id, company_id, suite_id, agent_overrides, labels, total_runs, parallelism, iterations, done_runs, rerun_of, cancel_requested_at, created_at, done_at FROM suite_runs
WHERE company_id = $1 AND suite_id = $2 AND done_at IS NOT NULL AND id <> $3
ORDER BY id DESC LIMIT 1

-- _LIST
SELECT id, company_id, suite_id, agent_overrides, labels, total_runs, parallelism, iterations, done_runs, rerun_of, cancel_requested_at, created_at, done_at FROM suite_runs WHERE company_id = $1 AND suite_id = $2 ORDER BY id DESC LIMIT $3 OFFSET $4

-- _MEMBERS
SELECT id, case_id, config->'case'->>'name' AS case_name, iteration, position, suite_seq, status, queue_status, termination_reason, score, pass_fail, error_code, total_cost_cents, duration_ms, started_at, ended_at FROM eval_runs WHERE suite_run_id = $1 ORDER BY position

-- _MEMBERS_DONE_AFTER
SELECT id, case_id, config->'case'->>'name' AS case_name, iteration, position, suite_seq, status, queue_status, termination_reason, score, pass_fail, error_code, total_cost_cents, duration_ms, started_at, ended_at FROM eval_runs
WHERE suite_run_id = $1 AND suite_seq > $2 ORDER BY suite_seq LIMIT $3

-- _PROGRESS
SELECT id, done_runs FROM suite_runs WHERE id = ANY($1::uuid[])

-- _REQUEST_CANCEL
UPDATE suite_runs SET cancel_requested_at = coalesce(cancel_requested_at, now())
WHERE id = $1 AND company_id = $2 AND suite_id = $3
RETURNING id, company_id, suite_id, agent_overrides, labels, total_runs, parallelism, iterations, done_runs, rerun_of, cancel_requested_at, created_at, done_at

-- _SELECT
SELECT id, company_id, suite_id, agent_overrides, labels, total_runs, parallelism, iterations, done_runs, rerun_of, cancel_requested_at, created_at, done_at FROM suite_runs WHERE id = $1 AND company_id = $2 AND suite_id = $3

-- _SELECT_ANY_SUITE
SELECT id, company_id, suite_id, agent_overrides, labels, total_runs, parallelism, iterations, done_runs, rerun_of, cancel_requested_at, created_at, done_at FROM suite_runs WHERE id = $1 AND company_id = $2
