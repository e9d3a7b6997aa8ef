-- The single-column CHECKs of eval_runs and eval_run_turns become domains (issue 16).
-- PostgreSQL re-reads and re-plans every CHECK of a table from its stored text for each statement
-- that writes a row, and checks them all whatever columns the statement sets: with 33 of them,
-- ~100 µs of server CPU on every write to eval_runs, ~10 such statements per run (`python -m
-- bench.constraints`). A domain's check is compiled once per connection and runs only for the
-- columns a statement assigns. The rules are the same; a violation is still a check_violation
-- (SQLSTATE 23514), now named after the domain's constraint.
--
-- No table is rewritten, scanned or re-indexed while it is locked:
-- * a column's type becomes a domain with no constraint yet (binary-coercible: no rewrite, and
--   its plain indexes are kept), then each domain gets its check NOT VALID (the rows already
--   passed the same check as a table CHECK; every new value is checked);
-- * columns a partial index names (status, queue_status, position, suite_seq) keep their type
--   and their CHECK: PostgreSQL rebuilds a partial index on a column whose type changes;
-- * multi-column CHECKs naming a changed column would be re-checked by a scan under the
--   ALTER's exclusive lock, so they are dropped first and re-added NOT VALID; 0017 validates
--   them without blocking writes.

CREATE DOMAIN nonneg_integer AS integer;
CREATE DOMAIN positive_integer AS integer;
CREATE DOMAIN nonneg_bigint AS bigint;
CREATE DOMAIN percentage AS double precision;
CREATE DOMAIN object_jsonb AS jsonb;
CREATE DOMAIN array_jsonb AS jsonb;
CREATE DOMAIN run_mode AS text;
CREATE DOMAIN run_termination_reason AS text;
CREATE DOMAIN turn_role AS text;

ALTER TABLE eval_runs
    DROP CONSTRAINT eval_runs_terminal_has_reason,
    DROP CONSTRAINT eval_runs_cost_split,
    DROP CONSTRAINT eval_runs_check,  -- uncollected_cents BETWEEN 0 AND total_cost_cents
    DROP CONSTRAINT eval_runs_mode_check,
    DROP CONSTRAINT eval_runs_config_check,
    DROP CONSTRAINT eval_runs_agent_overrides_check,
    DROP CONSTRAINT eval_runs_labels_check,
    DROP CONSTRAINT eval_runs_termination_reason_check,
    DROP CONSTRAINT eval_runs_attempt_check,
    DROP CONSTRAINT eval_runs_handed_back_check,
    DROP CONSTRAINT eval_runs_last_event_seq_check,
    DROP CONSTRAINT eval_runs_active_ms_check,
    DROP CONSTRAINT eval_runs_duration_ms_check,
    DROP CONSTRAINT eval_runs_iteration_check,
    DROP CONSTRAINT eval_runs_score_check,
    DROP CONSTRAINT eval_runs_agent_input_tokens_check,
    DROP CONSTRAINT eval_runs_agent_output_tokens_check,
    DROP CONSTRAINT eval_runs_persona_input_tokens_check,
    DROP CONSTRAINT eval_runs_persona_output_tokens_check,
    DROP CONSTRAINT eval_runs_judge_input_tokens_check,
    DROP CONSTRAINT eval_runs_judge_output_tokens_check,
    DROP CONSTRAINT eval_runs_judge_cost_microcents_check,
    DROP CONSTRAINT eval_runs_agent_cost_cents_check,
    DROP CONSTRAINT eval_runs_persona_cost_cents_check,
    DROP CONSTRAINT eval_runs_judge_cost_cents_check,
    DROP CONSTRAINT eval_runs_total_cost_cents_check,
    ALTER COLUMN mode TYPE run_mode,
    ALTER COLUMN config TYPE object_jsonb,
    ALTER COLUMN agent_overrides TYPE object_jsonb,
    ALTER COLUMN labels TYPE object_jsonb,
    ALTER COLUMN termination_reason TYPE run_termination_reason,
    ALTER COLUMN attempt TYPE nonneg_integer,
    ALTER COLUMN handed_back TYPE nonneg_integer,
    ALTER COLUMN last_event_seq TYPE nonneg_integer,
    ALTER COLUMN active_ms TYPE nonneg_bigint,
    ALTER COLUMN duration_ms TYPE nonneg_integer,
    ALTER COLUMN iteration TYPE positive_integer,
    ALTER COLUMN score TYPE percentage,
    ALTER COLUMN agent_input_tokens TYPE nonneg_bigint,
    ALTER COLUMN agent_output_tokens TYPE nonneg_bigint,
    ALTER COLUMN persona_input_tokens TYPE nonneg_bigint,
    ALTER COLUMN persona_output_tokens TYPE nonneg_bigint,
    ALTER COLUMN judge_input_tokens TYPE nonneg_bigint,
    ALTER COLUMN judge_output_tokens TYPE nonneg_bigint,
    ALTER COLUMN judge_cost_microcents TYPE nonneg_bigint,
    ALTER COLUMN agent_cost_cents TYPE nonneg_bigint,
    ALTER COLUMN persona_cost_cents TYPE nonneg_bigint,
    ALTER COLUMN judge_cost_cents TYPE nonneg_bigint,
    ALTER COLUMN total_cost_cents TYPE nonneg_bigint,
    ALTER COLUMN uncollected_cents TYPE nonneg_bigint;

ALTER TABLE eval_run_turns
    DROP CONSTRAINT eval_run_turns_turn_number_check,
    DROP CONSTRAINT eval_run_turns_role_check,
    DROP CONSTRAINT eval_run_turns_tool_calls_check,
    DROP CONSTRAINT eval_run_turns_input_tokens_check,
    DROP CONSTRAINT eval_run_turns_output_tokens_check,
    DROP CONSTRAINT eval_run_turns_cost_microcents_check,
    DROP CONSTRAINT eval_run_turns_latency_ms_check,
    DROP CONSTRAINT eval_run_turns_attempt_check,
    ALTER COLUMN turn_number TYPE positive_integer,
    ALTER COLUMN role TYPE turn_role,
    ALTER COLUMN tool_calls TYPE array_jsonb,
    ALTER COLUMN input_tokens TYPE nonneg_integer,
    ALTER COLUMN output_tokens TYPE nonneg_integer,
    ALTER COLUMN cost_microcents TYPE nonneg_bigint,
    ALTER COLUMN latency_ms TYPE nonneg_integer,
    ALTER COLUMN attempt TYPE positive_integer;

-- A check on VALUE passes for NULL, as a column CHECK does: nullable columns stay nullable.
ALTER DOMAIN nonneg_integer ADD CONSTRAINT nonneg_integer_check CHECK (VALUE >= 0) NOT VALID;
ALTER DOMAIN positive_integer ADD CONSTRAINT positive_integer_check CHECK (VALUE >= 1) NOT VALID;
ALTER DOMAIN nonneg_bigint ADD CONSTRAINT nonneg_bigint_check CHECK (VALUE >= 0) NOT VALID;
ALTER DOMAIN percentage ADD CONSTRAINT percentage_check CHECK (VALUE BETWEEN 0 AND 100) NOT VALID;
ALTER DOMAIN object_jsonb ADD CONSTRAINT object_jsonb_check
    CHECK (jsonb_typeof(VALUE) = 'object') NOT VALID;
ALTER DOMAIN array_jsonb ADD CONSTRAINT array_jsonb_check CHECK (jsonb_typeof(VALUE) = 'array') NOT VALID;
ALTER DOMAIN run_mode ADD CONSTRAINT run_mode_check CHECK (VALUE IN ('text', 'voice')) NOT VALID;
ALTER DOMAIN run_termination_reason ADD CONSTRAINT run_termination_reason_check
    CHECK (VALUE IN ('agent_ended', 'persona_goodbye', 'max_turns', 'timeout', 'error', 'cancelled')) NOT VALID;
ALTER DOMAIN turn_role ADD CONSTRAINT turn_role_check
    CHECK (VALUE IN ('persona', 'agent', 'tool_result', 'flow_event')) NOT VALID;

-- The rules between columns stay table CHECKs (validated by 0017).
ALTER TABLE eval_runs
    ADD CONSTRAINT eval_runs_terminal_has_reason CHECK (
        (status IN ('completed', 'failed', 'cancelled')) = (termination_reason IS NOT NULL)) NOT VALID,
    ADD CONSTRAINT eval_runs_cost_split CHECK (
        agent_cost_cents + persona_cost_cents + judge_cost_cents = total_cost_cents) NOT VALID,
    ADD CONSTRAINT eval_runs_uncollected_within_cost CHECK (uncollected_cents <= total_cost_cents) NOT VALID;
