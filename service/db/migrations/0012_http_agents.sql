-- Agents called over HTTP (issue 14): `type = 'http'`. Their `endpoint` (URL, format, headers,
-- sealed secrets) lives in extra_fields like every non-column field; only they have one.

ALTER TABLE agents
    DROP CONSTRAINT agents_type_check,
    ADD CONSTRAINT agents_type_check CHECK (type IN ('prompt', 'flow', 'http')),
    ADD CONSTRAINT agents_endpoint_matches_type CHECK (
        (type = 'http') = coalesce(jsonb_typeof(extra_fields -> 'endpoint') = 'object', false)
    );
