-- Lock a company's row FOR NO KEY UPDATE to move its balance: it serialises balance changes as
-- before but, unlike FOR UPDATE, does not conflict with the FOR KEY SHARE locks that foreign-key
-- checks take (a transaction that already touched rows referencing the company holds one; with
-- FOR UPDATE two such transactions deadlock upgrading their locks).

CREATE OR REPLACE FUNCTION post_ledger_entry(
    p_id uuid, p_company_id uuid, p_kind text, p_amount_cents bigint, p_run_id uuid, p_reason text
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
BEGIN
    SELECT balance_cents INTO v_balance FROM companies WHERE id = p_company_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'company % does not exist', p_company_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF v_balance + p_amount_cents < 0 THEN
        RAISE EXCEPTION 'balance of company % would become negative', p_company_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'companies_balance_cents_check';
    END IF;
    INSERT INTO credit_ledger (id, company_id, kind, amount_cents, balance_after_cents, run_id, reason)
    VALUES (p_id, p_company_id, p_kind, p_amount_cents, v_balance + p_amount_cents, p_run_id, p_reason)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE companies SET balance_cents = balance_cents + p_amount_cents, updated_at = now()
    WHERE id = p_company_id;
    RETURN v_balance + p_amount_cents;
END
$$;

-- The run charge of DESIGN.md §7 in one statement: lock the balance, take LEAST(balance, total),
-- insert the charge once per run, move the balance. Returns the cents taken (0 when the balance
-- was empty or the total zero: no ledger row then), or NULL when this run was charged before
-- (nothing changes). One round trip keeps the company row's lock as short as it can be.
CREATE FUNCTION charge_run(p_id uuid, p_company_id uuid, p_run_id uuid, p_total_cents bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
    v_taken bigint;
BEGIN
    SELECT balance_cents INTO v_balance FROM companies WHERE id = p_company_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'company % does not exist', p_company_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    v_taken := LEAST(v_balance, p_total_cents);
    IF v_taken <= 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO credit_ledger (id, company_id, kind, amount_cents, balance_after_cents, run_id, reason)
    VALUES (p_id, p_company_id, 'eval_run_charge', -v_taken, v_balance - v_taken, p_run_id, 'eval run')
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE companies SET balance_cents = balance_cents - v_taken, updated_at = now() WHERE id = p_company_id;
    RETURN v_taken;
END
$$;
