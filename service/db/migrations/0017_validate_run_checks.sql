-- The multi-column CHECKs 0016 re-added NOT VALID, validated in a transaction of their own: a
-- scan under SHARE UPDATE EXCLUSIVE, which lets runs be read and written meanwhile.
ALTER TABLE eval_runs VALIDATE CONSTRAINT eval_runs_terminal_has_reason;
ALTER TABLE eval_runs VALIDATE CONSTRAINT eval_runs_cost_split;
ALTER TABLE eval_runs VALIDATE CONSTRAINT eval_runs_uncollected_within_cost;
