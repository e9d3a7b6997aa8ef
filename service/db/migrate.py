"""Forward-only numbered SQL migrations, applied under an advisory lock.

Files are `service/db/migrations/NNNN_name.sql`, applied in number order, each in its own
transaction, and recorded in `schema_migrations` with a SHA-256 of the file. An applied file
must never change: a different checksum stops the migration with an error, because the
database no longer matches what the code expects. Versions the database has but this code does
not know are left alone (an older release running during a rollout).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from service.core.errors import MigrationError
from service.db.postgres import Connection, in_transaction, translated

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# A fixed key for pg_advisory_lock: concurrent `agent-eval migrate` runs queue up behind it.
MIGRATION_LOCK_KEY = 7_301_245_001
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    sha256     text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_SELECT_APPLIED = "SELECT version, name, sha256 FROM schema_migrations ORDER BY version"
_INSERT_APPLIED = "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file, in version order; misnamed or duplicate versions are errors."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version}")
        found[version] = Migration(version, match.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


def migrations_digest(directory: Path = MIGRATIONS_DIR) -> str:
    """A short digest of every migration file: names the test template database."""
    digest = hashlib.sha256()
    for migration in load_migrations(directory):
        digest.update(f"{migration.version}:{migration.sha256}".encode())
    return digest.hexdigest()[:12]


_SELECT_VERSIONS = "SELECT version FROM schema_migrations"


async def missing_migrations(conn: Connection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Versions this code needs that the database has not applied (all of them if none ever ran)."""
    async with translated():
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        applied = {row["version"] for row in await conn.fetch(_SELECT_VERSIONS)} if exists else set()
    return [m.version for m in load_migrations(directory) if m.version not in applied]


async def apply_migrations(conn: Connection, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply the pending migrations; return the ones applied now (empty when up to date)."""
    migrations = load_migrations(directory)
    async with translated():
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await conn.execute(_CREATE_TABLE)
            applied = {row["version"]: row["sha256"] for row in await conn.fetch(_SELECT_APPLIED)}
            _check_applied(migrations, applied)
            pending = [m for m in migrations if m.version not in applied]
            for migration in pending:
                async with in_transaction(conn):
                    await conn.execute(migration.sql)
                    await conn.execute(_INSERT_APPLIED, migration.version, migration.name, migration.sha256)
            return pending
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


def _check_applied(migrations: list[Migration], applied: dict[int, str]) -> None:
    known = {m.version: m for m in migrations}
    for version, sha in applied.items():
        migration = known.get(version)
        # A newer migration than this code knows is normal while an upgrade rolls out or back.
        if migration is not None and migration.sha256 != sha:
            raise MigrationError(f"migration {version}_{migration.name} was edited after it was applied")
