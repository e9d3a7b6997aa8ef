-- Agents, personas, suites and cases: the company's resources, soft-deleted via deleted_at.

CREATE TABLE agents (
    id                     uuid PRIMARY KEY,
    company_id             uuid NOT NULL REFERENCES companies (id),
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    type                   text NOT NULL DEFAULT 'prompt' CHECK (type IN ('prompt', 'flow')),
    description            text,
    system_prompt          text NOT NULL DEFAULT '',
    temperature            double precision NOT NULL DEFAULT 0.5 CHECK (temperature BETWEEN 0 AND 2),
    greeting_message       text,
    agent_speaks_first     boolean NOT NULL DEFAULT true,
    language               text NOT NULL DEFAULT 'en',
    model                  text,
    tools                  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tools) = 'array'),
    flow_config            jsonb,
    rules                  jsonb CHECK (rules IS NULL OR jsonb_typeof(rules) = 'array'),
    max_call_duration_secs integer NOT NULL DEFAULT 600 CHECK (max_call_duration_secs BETWEEN 0 AND 3600),
    -- Every other field of the reference's agent object (voice-only timing, voice, webhooks…):
    -- stored and echoed so existing clients keep working, ignored by text simulations.
    extra_fields           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(extra_fields) = 'object'),
    is_active              boolean NOT NULL DEFAULT true,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    deleted_at             timestamptz,
    CHECK (type = 'flow' OR flow_config IS NULL)
);
CREATE INDEX agents_company ON agents (company_id, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE eval_personas (
    id              uuid PRIMARY KEY,
    company_id      uuid NOT NULL REFERENCES companies (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    identity_prompt text NOT NULL,
    description     text,
    behavior_traits jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(behavior_traits) = 'object'),
    language        text NOT NULL DEFAULT 'en',
    voice_config    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(voice_config) = 'object'),
    model           text,
    script          jsonb CHECK (script IS NULL OR jsonb_typeof(script) = 'array'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
-- Personas list sorted by name (reference §2.1).
CREATE INDEX eval_personas_company_name ON eval_personas (company_id, name, id) WHERE deleted_at IS NULL;

CREATE TABLE eval_suites (
    id          uuid PRIMARY KEY,
    company_id  uuid NOT NULL REFERENCES companies (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text,
    agent_id    uuid REFERENCES agents (id),
    parallelism integer NOT NULL DEFAULT 1 CHECK (parallelism BETWEEN 1 AND 16),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX eval_suites_company ON eval_suites (company_id, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE eval_cases (
    id               uuid PRIMARY KEY,
    company_id       uuid NOT NULL REFERENCES companies (id),
    suite_id         uuid REFERENCES eval_suites (id),
    agent_id         uuid NOT NULL REFERENCES agents (id),
    persona_id       uuid NOT NULL REFERENCES eval_personas (id),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    scenario         text NOT NULL,
    description      text,
    success_criteria jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(success_criteria) = 'array'),
    max_turns        integer NOT NULL DEFAULT 20 CHECK (max_turns BETWEEN 1 AND 100),
    pass_threshold   double precision NOT NULL DEFAULT 80 CHECK (pass_threshold BETWEEN 0 AND 100),
    agent_overrides  jsonb CHECK (agent_overrides IS NULL OR jsonb_typeof(agent_overrides) = 'object'),
    tool_policy      text NOT NULL DEFAULT 'mock' CHECK (tool_policy IN ('mock', 'real', 'allowlist')),
    tool_allowlist   text[] NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);
CREATE INDEX eval_cases_company ON eval_cases (company_id, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX eval_cases_agent ON eval_cases (company_id, agent_id) WHERE deleted_at IS NULL;
CREATE INDEX eval_cases_persona ON eval_cases (company_id, persona_id) WHERE deleted_at IS NULL;
CREATE INDEX eval_cases_suite ON eval_cases (suite_id, id) WHERE deleted_at IS NULL;
