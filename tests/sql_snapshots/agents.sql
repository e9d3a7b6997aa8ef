-- _DELETE
UPDATE agents SET deleted_at = now(), updated_at = now(), is_active = false WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL

-- _INSERT
INSERT INTO agents (id, company_id, name, type, description, system_prompt, temperature, greeting_message, agent_speaks_first, language, model, tools, flow_config, rules, max_call_duration_secs, is_active, extra_fields) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id, company_id, name, type, description, system_prompt, temperature, greeting_message, agent_speaks_first, language, model, tools, flow_config, rules, max_call_duration_secs, is_active, extra_fields, created_at, updated_at, deleted_at

-- _SELECT
SELECT id, company_id, name, type, description, system_prompt, temperature, greeting_message, agent_speaks_first, language, model, tools, flow_config, rules, max_call_duration_secs, is_active, extra_fields, created_at, updated_at, deleted_at FROM agents WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL

-- _SELECT_FOR_UPDATE
SELECT id, company_id, name, type, description, system_prompt, temperature, greeting_message, agent_speaks_first, language, model, tools, flow_config, rules, max_call_duration_secs, is_active, extra_fields, created_at, updated_at, deleted_at FROM agents WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL FOR UPDATE

-- _UPDATE
UPDATE agents SET name = $3, type = $4, description = $5, system_prompt = $6, temperature = $7, greeting_message = $8, agent_speaks_first = $9, language = $10, model = $11, tools = $12, flow_config = $13, rules = $14, max_call_duration_secs = $15, is_active = $16, extra_fields = $17, updated_at = now() WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL RETURNING id, company_id, name, type, description, system_prompt, temperature, greeting_message, agent_speaks_first, language, model, tools, flow_config, rules, max_call_duration_secs, is_active, extra_fields, created_at, updated_at, deleted_at
