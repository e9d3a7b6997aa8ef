-- _QUERIES['agent']
SELECT 'total' AS period, CASE l.kind WHEN 'eval_run_charge' THEN 'eval_run' WHEN 'grant' THEN 'topup'
                          WHEN 'refund' THEN 'refund' ELSE 'adjustment' END AS product, r.agent_id AS agent_id,
       sum(CASE l.kind WHEN 'grant' THEN l.amount_cents ELSE -l.amount_cents END)::bigint AS total_amount_cents, count(*)::int AS count
FROM credit_ledger l
LEFT JOIN eval_runs r ON r.id = l.run_id
WHERE l.company_id = $1 AND l.created_at >= $2 AND l.created_at < $3 AND (CASE l.kind WHEN 'eval_run_charge' THEN 'eval_run' WHEN 'grant' THEN 'topup'
                          WHEN 'refund' THEN 'refund' ELSE 'adjustment' END) = ANY($4::text[])
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3 NULLS FIRST

-- _QUERIES['day']
SELECT to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS period, CASE l.kind WHEN 'eval_run_charge' THEN 'eval_run' WHEN 'grant' THEN 'topup'
                          WHEN 'refund' THEN 'refund' ELSE 'adjustment' END AS product, NULL::uuid AS agent_id,
       sum(CASE l.kind WHEN 'grant' THEN l.amount_cents ELSE -l.amount_cents END)::bigint AS total_amount_cents, count(*)::int AS count
FROM credit_ledger l
LEFT JOIN eval_runs r ON r.id = l.run_id
WHERE l.company_id = $1 AND l.created_at >= $2 AND l.created_at < $3 AND (CASE l.kind WHEN 'eval_run_charge' THEN 'eval_run' WHEN 'grant' THEN 'topup'
                          WHEN 'refund' THEN 'refund' ELSE 'adjustment' END) = ANY($4::text[])
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3 NULLS FIRST

-- _QUERIES['month']
SELECT to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM') AS period, CASE l.kind WHEN 'eval_run_charge' THEN 'eval_run' WHEN 'grant' THEN 'topup'
                          WHEN 'refund' THEN 'refund' ELSE 'adjustment' END AS product, NULL::uuid AS agent_id,
       sum(CASE l.kind WHEN 'grant' THEN l.amount_cents ELSE -l.amount_cents END)::bigint AS total_amount_cents, count(*)::int AS count
FROM credit_ledger l
LEFT JOIN eval_runs r ON r.id = l.run_id
WHERE l.company_id = $1 AND l.created_at >= $2 AND l.created_at < $3 AND (CASE l.kind WHEN 'eval_run_charge' THEN 'eval_run' WHEN 'grant' THEN 'topup'
                          WHEN 'refund' THEN 'refund' ELSE 'adjustment' END) = ANY($4::text[])
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3 NULLS FIRST

-- _QUERIES['total']
SELECT 'total' AS period, CASE l.kind WHEN 'eval_run_charge' THEN 'eval_run' WHEN 'grant' THEN 'topup'
                          WHEN 'refund' THEN 'refund' ELSE 'adjustment' END AS product, NULL::uuid AS agent_id,
       sum(CASE l.kind WHEN 'grant' THEN l.amount_cents ELSE -l.amount_cents END)::bigint AS total_amount_cents, count(*)::int AS count
FROM credit_ledger l
LEFT JOIN eval_runs r ON r.id = l.run_id
WHERE l.company_id = $1 AND l.created_at >= $2 AND l.created_at < $3 AND (CASE l.kind WHEN 'eval_run_charge' THEN 'eval_run' WHEN 'grant' THEN 'topup'
                          WHEN 'refund' THEN 'refund' ELSE 'adjustment' END) = ANY($4::text[])
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3 NULLS FIRST
