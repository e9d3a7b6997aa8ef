-- _CREATE_TABLE
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    sha256     text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- _INSERT_APPLIED
INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)

-- _SELECT_APPLIED
SELECT version, name, sha256 FROM schema_migrations ORDER BY version

-- _SELECT_VERSIONS
SELECT version FROM schema_migrations
