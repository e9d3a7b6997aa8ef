-- _CHARGE_RUNS
SELECT $3::uuid AS run_id, charge_run($1, $2, $3, $4) AS taken

-- _POST
SELECT post_ledger_entry($1, $2, $3, $4, $5, $6)

-- _RECONCILE
SELECT c.id AS company_id, c.balance_cents, coalesce(l.total, 0) AS ledger_sum_cents
FROM companies c
LEFT JOIN (SELECT company_id, sum(amount_cents) AS total FROM credit_ledger GROUP BY company_id) l
       ON l.company_id = c.id
WHERE c.balance_cents <> coalesce(l.total, 0)
ORDER BY c.id

-- _SELECT_ENTRIES
SELECT id, company_id, kind, amount_cents, balance_after_cents, run_id, reason, created_at FROM credit_ledger WHERE company_id = $1 ORDER BY created_at, id
