-- _CASES_BY_IDS
SELECT c.id, c.company_id, c.agent_id, c.persona_id, c.name, c.scenario, c.description, c.suite_id, c.success_criteria, c.max_turns, c.pass_threshold, c.agent_overrides, c.tool_policy, c.tool_allowlist, c.created_at, c.updated_at, c.deleted_at,
       a.id AS a__id, a.company_id AS a__company_id, a.name AS a__name, a.type AS a__type, a.description AS a__description, a.system_prompt AS a__system_prompt, a.temperature AS a__temperature, a.greeting_message AS a__greeting_message, a.agent_speaks_first AS a__agent_speaks_first, a.language AS a__language, a.model AS a__model, a.tools AS a__tools, a.flow_config AS a__flow_config, a.rules AS a__rules, a.max_call_duration_secs AS a__max_call_duration_secs, a.is_active AS a__is_active, a.extra_fields AS a__extra_fields, a.created_at AS a__created_at, a.updated_at AS a__updated_at, a.deleted_at AS a__deleted_at,
       p.id AS p__id, p.company_id AS p__company_id, p.name AS p__name, p.identity_prompt AS p__identity_prompt, p.description AS p__description, p.behavior_traits AS p__behavior_traits, p.language AS p__language, p.voice_config AS p__voice_config, p.model AS p__model, p.script AS p__script, p.created_at AS p__created_at, p.updated_at AS p__updated_at, p.deleted_at AS p__deleted_at
FROM eval_cases c
JOIN agents a ON a.id = c.agent_id
JOIN eval_personas p ON p.id = c.persona_id
 WHERE c.company_id = $1 AND c.id = ANY($2::uuid[]) AND c.deleted_at IS NULL ORDER BY c.id

-- _DELETE
UPDATE eval_cases SET deleted_at = now(), updated_at = now() WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL

-- _INSERT
INSERT INTO eval_cases (id, company_id, agent_id, persona_id, name, scenario, description, suite_id, success_criteria, max_turns, pass_threshold, agent_overrides, tool_policy, tool_allowlist) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)

-- _LOCK_ONE
SELECT id FROM eval_cases WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL FOR UPDATE

-- _SELECT_FOR_RUN
SELECT joined.*, co.balance_cents AS co__balance_cents, co.is_suspended AS co__is_suspended
FROM (
SELECT c.id, c.company_id, c.agent_id, c.persona_id, c.name, c.scenario, c.description, c.suite_id, c.success_criteria, c.max_turns, c.pass_threshold, c.agent_overrides, c.tool_policy, c.tool_allowlist, c.created_at, c.updated_at, c.deleted_at,
       a.id AS a__id, a.company_id AS a__company_id, a.name AS a__name, a.type AS a__type, a.description AS a__description, a.system_prompt AS a__system_prompt, a.temperature AS a__temperature, a.greeting_message AS a__greeting_message, a.agent_speaks_first AS a__agent_speaks_first, a.language AS a__language, a.model AS a__model, a.tools AS a__tools, a.flow_config AS a__flow_config, a.rules AS a__rules, a.max_call_duration_secs AS a__max_call_duration_secs, a.is_active AS a__is_active, a.extra_fields AS a__extra_fields, a.created_at AS a__created_at, a.updated_at AS a__updated_at, a.deleted_at AS a__deleted_at,
       p.id AS p__id, p.company_id AS p__company_id, p.name AS p__name, p.identity_prompt AS p__identity_prompt, p.description AS p__description, p.behavior_traits AS p__behavior_traits, p.language AS p__language, p.voice_config AS p__voice_config, p.model AS p__model, p.script AS p__script, p.created_at AS p__created_at, p.updated_at AS p__updated_at, p.deleted_at AS p__deleted_at
FROM eval_cases c
JOIN agents a ON a.id = c.agent_id
JOIN eval_personas p ON p.id = c.persona_id
 WHERE c.id = $1 AND c.company_id = $2 AND c.deleted_at IS NULL) AS joined JOIN companies co ON co.id = $2

-- _SELECT_JOINED
SELECT c.id, c.company_id, c.agent_id, c.persona_id, c.name, c.scenario, c.description, c.suite_id, c.success_criteria, c.max_turns, c.pass_threshold, c.agent_overrides, c.tool_policy, c.tool_allowlist, c.created_at, c.updated_at, c.deleted_at,
       a.id AS a__id, a.company_id AS a__company_id, a.name AS a__name, a.type AS a__type, a.description AS a__description, a.system_prompt AS a__system_prompt, a.temperature AS a__temperature, a.greeting_message AS a__greeting_message, a.agent_speaks_first AS a__agent_speaks_first, a.language AS a__language, a.model AS a__model, a.tools AS a__tools, a.flow_config AS a__flow_config, a.rules AS a__rules, a.max_call_duration_secs AS a__max_call_duration_secs, a.is_active AS a__is_active, a.extra_fields AS a__extra_fields, a.created_at AS a__created_at, a.updated_at AS a__updated_at, a.deleted_at AS a__deleted_at,
       p.id AS p__id, p.company_id AS p__company_id, p.name AS p__name, p.identity_prompt AS p__identity_prompt, p.description AS p__description, p.behavior_traits AS p__behavior_traits, p.language AS p__language, p.voice_config AS p__voice_config, p.model AS p__model, p.script AS p__script, p.created_at AS p__created_at, p.updated_at AS p__updated_at, p.deleted_at AS p__deleted_at
FROM eval_cases c
JOIN agents a ON a.id = c.agent_id
JOIN eval_personas p ON p.id = c.persona_id

-- _SELECT_ONE
SELECT c.id, c.company_id, c.agent_id, c.persona_id, c.name, c.scenario, c.description, c.suite_id, c.success_criteria, c.max_turns, c.pass_threshold, c.agent_overrides, c.tool_policy, c.tool_allowlist, c.created_at, c.updated_at, c.deleted_at,
       a.id AS a__id, a.company_id AS a__company_id, a.name AS a__name, a.type AS a__type, a.description AS a__description, a.system_prompt AS a__system_prompt, a.temperature AS a__temperature, a.greeting_message AS a__greeting_message, a.agent_speaks_first AS a__agent_speaks_first, a.language AS a__language, a.model AS a__model, a.tools AS a__tools, a.flow_config AS a__flow_config, a.rules AS a__rules, a.max_call_duration_secs AS a__max_call_duration_secs, a.is_active AS a__is_active, a.extra_fields AS a__extra_fields, a.created_at AS a__created_at, a.updated_at AS a__updated_at, a.deleted_at AS a__deleted_at,
       p.id AS p__id, p.company_id AS p__company_id, p.name AS p__name, p.identity_prompt AS p__identity_prompt, p.description AS p__description, p.behavior_traits AS p__behavior_traits, p.language AS p__language, p.voice_config AS p__voice_config, p.model AS p__model, p.script AS p__script, p.created_at AS p__created_at, p.updated_at AS p__updated_at, p.deleted_at AS p__deleted_at
FROM eval_cases c
JOIN agents a ON a.id = c.agent_id
JOIN eval_personas p ON p.id = c.persona_id
 WHERE c.id = $1 AND c.company_id = $2 AND c.deleted_at IS NULL

-- _SUITE_CASES
SELECT c.id, c.company_id, c.agent_id, c.persona_id, c.name, c.scenario, c.description, c.suite_id, c.success_criteria, c.max_turns, c.pass_threshold, c.agent_overrides, c.tool_policy, c.tool_allowlist, c.created_at, c.updated_at, c.deleted_at,
       a.id AS a__id, a.company_id AS a__company_id, a.name AS a__name, a.type AS a__type, a.description AS a__description, a.system_prompt AS a__system_prompt, a.temperature AS a__temperature, a.greeting_message AS a__greeting_message, a.agent_speaks_first AS a__agent_speaks_first, a.language AS a__language, a.model AS a__model, a.tools AS a__tools, a.flow_config AS a__flow_config, a.rules AS a__rules, a.max_call_duration_secs AS a__max_call_duration_secs, a.is_active AS a__is_active, a.extra_fields AS a__extra_fields, a.created_at AS a__created_at, a.updated_at AS a__updated_at, a.deleted_at AS a__deleted_at,
       p.id AS p__id, p.company_id AS p__company_id, p.name AS p__name, p.identity_prompt AS p__identity_prompt, p.description AS p__description, p.behavior_traits AS p__behavior_traits, p.language AS p__language, p.voice_config AS p__voice_config, p.model AS p__model, p.script AS p__script, p.created_at AS p__created_at, p.updated_at AS p__updated_at, p.deleted_at AS p__deleted_at
FROM eval_cases c
JOIN agents a ON a.id = c.agent_id
JOIN eval_personas p ON p.id = c.persona_id
 WHERE c.company_id = $1 AND c.suite_id = $2 AND c.deleted_at IS NULL ORDER BY c.id

-- _UPDATE
UPDATE eval_cases SET agent_id = $3, persona_id = $4, name = $5, scenario = $6, description = $7, suite_id = $8, success_criteria = $9, max_turns = $10, pass_threshold = $11, agent_overrides = $12, tool_policy = $13, tool_allowlist = $14, updated_at = now() WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL RETURNING id, company_id, agent_id, persona_id, name, scenario, description, suite_id, success_criteria, max_turns, pass_threshold, agent_overrides, tool_policy, tool_allowlist, created_at, updated_at, deleted_at
