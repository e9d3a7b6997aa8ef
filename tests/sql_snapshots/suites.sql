-- _DELETE
UPDATE eval_suites SET deleted_at = now(), updated_at = now() WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL

-- _INSERT
INSERT INTO eval_suites (id, company_id, name, description, agent_id, parallelism) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, company_id, name, description, agent_id, parallelism, created_at, updated_at, deleted_at

-- _SELECT
SELECT id, company_id, name, description, agent_id, parallelism, created_at, updated_at, deleted_at FROM eval_suites WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL

-- _SELECT_FOR_UPDATE
SELECT id, company_id, name, description, agent_id, parallelism, created_at, updated_at, deleted_at FROM eval_suites WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL FOR UPDATE

-- _UPDATE
UPDATE eval_suites SET name = $3, description = $4, agent_id = $5, parallelism = $6, updated_at = now() WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL RETURNING id, company_id, name, description, agent_id, parallelism, created_at, updated_at, deleted_at
