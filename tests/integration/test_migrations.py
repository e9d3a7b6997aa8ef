"""`agent-eval migrate`: from an empty database, re-run, concurrent runs, edited files."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from service.core.errors import MigrationError
from service.db.migrate import MIGRATIONS_DIR, apply_migrations, load_migrations

TABLES = {
    "companies",
    "api_keys",
    "rate_limit_windows",
    "agents",
    "eval_personas",
    "eval_suites",
    "eval_cases",
    "suite_runs",
    "eval_runs",
    "eval_run_turns",
    "credit_ledger",
    "outbox",
    "outbox_pending",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
    "idempotency_keys",
    "schema_migrations",
}


async def _columns(conn: asyncpg.Connection, table: str) -> set[str]:
    rows = await conn.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = $1", table)
    return {r["column_name"] for r in rows}


async def test_migrations_from_empty_create_every_table(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        applied = await apply_migrations(conn)
        assert [m.version for m in applied] == [m.version for m in load_migrations()]
        tables = {
            r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert tables == TABLES
        run_columns = await _columns(conn, "eval_runs")
        assert {
            "released_at",
            "position",
            "claimed_by",
            "lease_expires_at",
            "attempt",
            "cancel_requested_at",
            "last_event_seq",
            "uncollected_cents",
            "labels",
        } <= run_columns
        assert "cost_microcents" in await _columns(conn, "eval_run_turns")
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'credit_ledger_one_charge_per_run'"
        )
        assert "UNIQUE" in index
        assert "WHERE (kind = 'eval_run_charge'::text)" in index
    finally:
        await conn.close()


async def test_rerunning_migrations_applies_nothing(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn)
        assert await apply_migrations(conn) == []
        count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(load_migrations())
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_each_file_once(empty_database_url: str) -> None:
    conns = [await asyncpg.connect(empty_database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, len(load_migrations())]
    finally:
        for conn in conns:
            await conn.close()


async def test_an_edited_migration_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn, copy)
        first = sorted(copy.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await apply_migrations(conn, copy)
    finally:
        await conn.close()


async def test_a_newer_database_is_left_alone(empty_database_url: str, tmp_path: Path) -> None:
    """An older release running during a rollout must not fail on a migration it does not know."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, sha256) VALUES (9999, 'future', 'x')"
        )
        assert await apply_migrations(conn) == []
    finally:
        await conn.close()


def test_misnamed_migration_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_bad.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0001_b.sql").write_text("SELECT 2")
    with pytest.raises(MigrationError, match="share version 1"):
        load_migrations(tmp_path)


_OLD_RELAY_UNSENT = "SELECT id FROM outbox WHERE sent_at IS NULL ORDER BY id"  # the release before 0015
_OLD_PURGE_DUE = "SELECT id FROM outbox WHERE sent_at < now() - interval '1 second'"
_EVENT = """
INSERT INTO outbox (event_id, topic, key, type, company_id, payload)
VALUES (gen_random_uuid(), 'agent-eval.run-events.v1', 'k', 'agent_eval.run.queued', gen_random_uuid(), '{}')
RETURNING id
"""


async def test_the_outbox_upgrade_lists_unsent_rows_and_keeps_an_old_relay_off_new_ones(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Migration 0015 on a database with events: rows the old relay had not sent are pending for
    the new one; rows written afterwards are pending too, and an old relay still running during
    the rollout neither publishes nor purges them."""
    before = tmp_path / "migrations"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) < 15:
            shutil.copy(path, before / path.name)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn, before)
        sent, unsent = [await conn.fetchval(_EVENT) for _ in range(2)]
        await conn.execute("UPDATE outbox SET sent_at = now() - interval '1 hour' WHERE id = $1", sent)
        assert [m.version for m in await apply_migrations(conn)] == [15]
        written_after = await conn.fetchval(_EVENT)
        pending = [r["id"] for r in await conn.fetch("SELECT id FROM outbox_pending ORDER BY id")]
        assert pending == [unsent, written_after]
        assert [r["id"] for r in await conn.fetch(_OLD_RELAY_UNSENT)] == [unsent]
        assert [r["id"] for r in await conn.fetch(_OLD_PURGE_DUE)] == [sent]
    finally:
        await conn.close()
