-- Suite executions, runs and their transcripts (DESIGN.md §3, §4).

CREATE TABLE suite_runs (
    id              uuid PRIMARY KEY,
    company_id      uuid NOT NULL REFERENCES companies (id),
    suite_id        uuid NOT NULL REFERENCES eval_suites (id),
    agent_overrides jsonb CHECK (agent_overrides IS NULL OR jsonb_typeof(agent_overrides) = 'object'),
    labels          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    total_runs      integer NOT NULL CHECK (total_runs >= 1),
    parallelism     integer NOT NULL CHECK (parallelism BETWEEN 1 AND 16),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Set once, in the transaction that finalises the last run and emits suite_run.done.
    done_at         timestamptz
);
CREATE INDEX suite_runs_suite ON suite_runs (suite_id, id DESC);
CREATE INDEX suite_runs_company ON suite_runs (company_id, id DESC);

CREATE TABLE eval_runs (
    id                    uuid PRIMARY KEY,
    company_id            uuid NOT NULL REFERENCES companies (id),
    case_id               uuid REFERENCES eval_cases (id) ON DELETE SET NULL,
    suite_id              uuid REFERENCES eval_suites (id) ON DELETE SET NULL,
    suite_run_id          uuid REFERENCES suite_runs (id),
    agent_id              uuid,
    persona_id            uuid,
    mode                  text NOT NULL DEFAULT 'text' CHECK (mode IN ('text', 'voice')),
    -- Immutable snapshot: the case as triggered, the merged agent and persona actually used,
    -- and the exact system prompts sent.
    config                jsonb NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    agent_overrides       jsonb CHECK (agent_overrides IS NULL OR jsonb_typeof(agent_overrides) = 'object'),
    labels                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),

    status                text NOT NULL DEFAULT 'queued'
                          CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    queue_status          text NOT NULL DEFAULT 'pending' CHECK (queue_status IN ('pending', 'claimed', 'done')),
    termination_reason    text CHECK (termination_reason IN
                          ('agent_ended', 'persona_goodbye', 'max_turns', 'timeout', 'error', 'cancelled')),

    -- Dispatch: a run is executed only once released; suite runs keep their order in position.
    released_at           timestamptz,
    position              integer CHECK (position >= 0),

    -- Fenced lease: every executor write carries claimed_by and attempt.
    claimed_by            text,
    lease_expires_at      timestamptz,
    attempt               integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    cancel_requested_at   timestamptz,
    last_event_seq        integer NOT NULL DEFAULT 0 CHECK (last_event_seq >= 0),

    started_at            timestamptz,
    ended_at              timestamptz,
    duration_ms           integer CHECK (duration_ms >= 0),
    done_at               timestamptz,

    score                 double precision CHECK (score BETWEEN 0 AND 100),
    pass_fail             boolean,
    evaluation            jsonb,

    agent_model           text,
    persona_model         text,
    agent_input_tokens    bigint NOT NULL DEFAULT 0 CHECK (agent_input_tokens >= 0),
    agent_output_tokens   bigint NOT NULL DEFAULT 0 CHECK (agent_output_tokens >= 0),
    persona_input_tokens  bigint NOT NULL DEFAULT 0 CHECK (persona_input_tokens >= 0),
    persona_output_tokens bigint NOT NULL DEFAULT 0 CHECK (persona_output_tokens >= 0),
    judge_input_tokens    bigint NOT NULL DEFAULT 0 CHECK (judge_input_tokens >= 0),
    judge_output_tokens   bigint NOT NULL DEFAULT 0 CHECK (judge_output_tokens >= 0),
    agent_cost_cents      bigint NOT NULL DEFAULT 0 CHECK (agent_cost_cents >= 0),
    persona_cost_cents    bigint NOT NULL DEFAULT 0 CHECK (persona_cost_cents >= 0),
    judge_cost_cents      bigint NOT NULL DEFAULT 0 CHECK (judge_cost_cents >= 0),
    total_cost_cents      bigint NOT NULL DEFAULT 0 CHECK (total_cost_cents >= 0),
    uncollected_cents     bigint NOT NULL DEFAULT 0 CHECK (uncollected_cents BETWEEN 0 AND total_cost_cents),

    error                 text,
    error_code            text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),

    -- A run has a termination reason exactly when its conversation is over.
    CONSTRAINT eval_runs_terminal_has_reason CHECK (
        (status IN ('completed', 'failed', 'cancelled')) = (termination_reason IS NOT NULL)),
    -- Nothing is final before the conversation is.
    CONSTRAINT eval_runs_done_is_terminal CHECK (
        queue_status <> 'done' OR status IN ('completed', 'failed', 'cancelled')),
    CONSTRAINT eval_runs_claim_has_owner CHECK (
        queue_status <> 'claimed' OR (claimed_by IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT eval_runs_suite_position CHECK ((suite_run_id IS NULL) = (position IS NULL)),
    CONSTRAINT eval_runs_cost_split CHECK (
        agent_cost_cents + persona_cost_cents + judge_cost_cents = total_cost_cents)
);
-- Lists: newest first per company / case / suite (UUIDv7 ids are time-ordered).
CREATE INDEX eval_runs_company ON eval_runs (company_id, id DESC);
CREATE INDEX eval_runs_case ON eval_runs (case_id, id DESC);
CREATE INDEX eval_runs_suite ON eval_runs (suite_id, id DESC);
CREATE INDEX eval_runs_suite_run ON eval_runs (suite_run_id, position);
CREATE INDEX eval_runs_labels ON eval_runs USING gin (labels jsonb_path_ops);
-- Dispatch and sweeps touch only a few rows each; partial indexes keep them cheap.
CREATE INDEX eval_runs_held ON eval_runs (company_id, suite_run_id, position) WHERE released_at IS NULL;
CREATE INDEX eval_runs_inflight ON eval_runs (company_id)
    WHERE released_at IS NOT NULL AND status IN ('queued', 'running');
CREATE INDEX eval_runs_pending ON eval_runs (released_at)
    WHERE queue_status = 'pending' AND released_at IS NOT NULL;
CREATE INDEX eval_runs_leases ON eval_runs (lease_expires_at)
    WHERE queue_status = 'claimed' AND status IN ('queued', 'running');
CREATE INDEX eval_runs_unfinalised ON eval_runs (ended_at)
    WHERE queue_status <> 'done' AND status IN ('completed', 'failed', 'cancelled');

CREATE TABLE eval_run_turns (
    id                uuid PRIMARY KEY,
    run_id            uuid NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
    turn_number       integer NOT NULL CHECK (turn_number >= 1),
    role              text NOT NULL CHECK (role IN ('persona', 'agent', 'tool_result', 'flow_event')),
    text              text,
    tool_calls        jsonb CHECK (tool_calls IS NULL OR jsonb_typeof(tool_calls) = 'array'),
    tool_result       jsonb,
    flow_event        jsonb,
    model             text,
    input_tokens      integer NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens     integer NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    -- Exact price in 10^-6 cents, fixed with the rate card in force when the row was written.
    cost_microcents   bigint NOT NULL DEFAULT 0 CHECK (cost_microcents >= 0),
    rate_card_version text,
    latency_ms        integer CHECK (latency_ms >= 0),
    attempt           integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, turn_number)
);
