-- _DELETE
UPDATE eval_personas SET deleted_at = now(), updated_at = now() WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL

-- _INSERT
INSERT INTO eval_personas (id, company_id, name, identity_prompt, description, behavior_traits, language, voice_config, model, script) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id, company_id, name, identity_prompt, description, behavior_traits, language, voice_config, model, script, created_at, updated_at, deleted_at

-- _SELECT
SELECT id, company_id, name, identity_prompt, description, behavior_traits, language, voice_config, model, script, created_at, updated_at, deleted_at FROM eval_personas WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL

-- _SELECT_FOR_UPDATE
SELECT id, company_id, name, identity_prompt, description, behavior_traits, language, voice_config, model, script, created_at, updated_at, deleted_at FROM eval_personas WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL FOR UPDATE

-- _UPDATE
UPDATE eval_personas SET name = $3, identity_prompt = $4, description = $5, behavior_traits = $6, language = $7, voice_config = $8, model = $9, script = $10, updated_at = now() WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL RETURNING id, company_id, name, identity_prompt, description, behavior_traits, language, voice_config, model, script, created_at, updated_at, deleted_at
