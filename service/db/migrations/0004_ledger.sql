-- The credit ledger: append-only; the company balance moves only through post_ledger_entry().

CREATE TABLE credit_ledger (
    id                  uuid PRIMARY KEY,
    company_id          uuid NOT NULL REFERENCES companies (id),
    kind                text NOT NULL CHECK (kind IN ('grant', 'deduction', 'eval_run_charge', 'refund')),
    amount_cents        bigint NOT NULL,
    balance_after_cents bigint NOT NULL CHECK (balance_after_cents >= 0),
    run_id              uuid REFERENCES eval_runs (id),
    reason              text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credit_ledger_sign CHECK (
        (kind IN ('grant', 'refund') AND amount_cents > 0)
        OR (kind IN ('deduction', 'eval_run_charge') AND amount_cents < 0)),
    CONSTRAINT credit_ledger_charge_has_run CHECK (kind <> 'eval_run_charge' OR run_id IS NOT NULL)
);
-- One charge per run, ever.
CREATE UNIQUE INDEX credit_ledger_one_charge_per_run ON credit_ledger (run_id) WHERE kind = 'eval_run_charge';
CREATE INDEX credit_ledger_company ON credit_ledger (company_id, created_at);

-- Insert one entry and move the balance, in the caller's transaction. The company row is locked
-- first, so entries of one company are serialised and balance_after_cents is exact. Returns the
-- new balance, or NULL when the entry already exists (same id, or this run's charge) — then
-- nothing changed. A balance that would go negative raises check_violation (23514).
CREATE FUNCTION post_ledger_entry(
    p_id uuid, p_company_id uuid, p_kind text, p_amount_cents bigint, p_run_id uuid, p_reason text
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
BEGIN
    SELECT balance_cents INTO v_balance FROM companies WHERE id = p_company_id FOR UPDATE;
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
