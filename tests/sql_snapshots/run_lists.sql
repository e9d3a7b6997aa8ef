-- _RECENT_OUTCOMES
SELECT r.id, c.case_id, r.status, r.queue_status, r.pass_fail, r.score, r.created_at
FROM unnest($2::uuid[]) AS c (case_id)
CROSS JOIN LATERAL (
    SELECT id, status, queue_status, pass_fail, score, created_at FROM eval_runs
    WHERE case_id = c.case_id AND company_id = $1 ORDER BY id DESC LIMIT $3
) AS r
ORDER BY c.case_id, r.id DESC
