"""`agent-eval migrate`: from an empty database, re-run, concurrent runs, edited files."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from service.core.errors import DatabaseUnavailable, MigrationError
from service.db.migrate import MIGRATIONS_DIR, apply_migrations, load_migrations
from service.db.postgres import close_quietly, connect, in_transaction

TABLES = {
    "companies",
    "api_keys",
    "rate_limit_windows",
    "relay_state",
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
    "inflight_entered",
    "inflight_left",
    "schema_migrations",
}


def _migrations_before(version: int, tmp_path: Path) -> Path:
    """A folder with the migration files older than `version`: the schema a previous release left."""
    before = tmp_path / "migrations"
    before.mkdir(parents=True)
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) < version:
            shutil.copy(path, before / path.name)
    return before


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
    before = _migrations_before(15, tmp_path)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn, before)
        sent, unsent = [await conn.fetchval(_EVENT) for _ in range(2)]
        await conn.execute("UPDATE outbox SET sent_at = now() - interval '1 hour' WHERE id = $1", sent)
        applied = [m.version for m in await apply_migrations(conn)]
        assert applied[: applied.index(15) + 1] == [15]  # then any later ones
        written_after = await conn.fetchval(_EVENT)
        pending = [r["id"] for r in await conn.fetch("SELECT id FROM outbox_pending ORDER BY id")]
        assert pending == [unsent, written_after]
        assert [r["id"] for r in await conn.fetch(_OLD_RELAY_UNSENT)] == [unsent]
        assert [r["id"] for r in await conn.fetch(_OLD_PURGE_DUE)] == [sent]
    finally:
        await conn.close()


_RELFILES = """
SELECT c.relname, c.relfilenode FROM pg_class c
WHERE c.oid IN ('eval_runs'::regclass, 'eval_run_turns'::regclass)
   OR c.oid IN (SELECT indexrelid FROM pg_index
                WHERE indrelid IN ('eval_runs'::regclass, 'eval_run_turns'::regclass))
"""


async def _relfiles(conn: asyncpg.Connection) -> dict[str, int]:
    """Each table's and index's file: a rewrite or a rebuild gives it a new one."""
    return {r["relname"]: r["relfilenode"] for r in await conn.fetch(_RELFILES)}


_BROKEN_RULES = [
    "UPDATE eval_runs SET attempt = -1",
    "UPDATE eval_runs SET mode = 'fax'",
    "UPDATE eval_runs SET config = '[]'",
    "UPDATE eval_runs SET labels = '[1]'",
    "UPDATE eval_runs SET score = 100.5",
    "UPDATE eval_runs SET agent_input_tokens = -5",
    "UPDATE eval_runs SET status = 'lost'",
    "UPDATE eval_runs SET termination_reason = 'bored'",
    "UPDATE eval_runs SET status = 'completed'",  # terminal needs a reason
    "UPDATE eval_runs SET agent_cost_cents = 7",  # the split no longer adds up
    "UPDATE eval_runs SET uncollected_cents = total_cost_cents + 1",
    "UPDATE eval_run_turns SET role = 'robot'",
    "UPDATE eval_run_turns SET turn_number = 0",
    "UPDATE eval_run_turns SET tool_calls = '{}'",
    "UPDATE eval_run_turns SET cost_microcents = -1",
]


async def test_the_check_domains_upgrade_keeps_every_rule_and_rewrites_nothing(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Migrations 0016 and 0017 on a database with runs: no table or index is rebuilt (their
    files stay), the rows read back alike, and every rule the CHECKs made is still enforced."""
    before = _migrations_before(16, tmp_path)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn, before)
        company = await conn.fetchval(
            "INSERT INTO companies (id, name) VALUES (gen_random_uuid(), 'c') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO eval_runs"
            " (id, company_id, config, labels, score, agent_cost_cents, total_cost_cents)"
            ' VALUES (gen_random_uuid(), $1, \'{"case": 1}\', \'{"team": "a"}\', 87.5, 3, 3)',
            company,
        )
        await conn.execute(
            "INSERT INTO eval_run_turns (id, run_id, turn_number, role, tool_calls)"
            " SELECT gen_random_uuid(), id, 1, 'agent', '[]' FROM eval_runs"
        )
        files = await _relfiles(conn)
        rows = [dict(r) for r in await conn.fetch("SELECT * FROM eval_runs JOIN eval_run_turns ON true")]
        through_17 = _migrations_before(18, tmp_path / "through_17")  # 0019 rebuilds three indexes
        assert [m.version for m in await apply_migrations(conn, through_17)] == [16, 17]
        assert await _relfiles(conn) == files
        assert [
            dict(r) for r in await conn.fetch("SELECT * FROM eval_runs JOIN eval_run_turns ON true")
        ] == rows
        for statement in _BROKEN_RULES:
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(statement)
        await conn.execute("UPDATE eval_runs SET agent_overrides = NULL, duration_ms = NULL, attempt = 2")
        unvalidated = await conn.fetch(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'eval_runs'::regclass AND NOT convalidated"
        )
        assert unvalidated == []
    finally:
        await conn.close()


async def test_a_statement_prepared_before_the_upgrade_fails_once_as_unavailable_then_works(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A process running through migration 0016 holds statements that return the old column
    types. In a transaction the first use raises: it is a retryable `DatabaseUnavailable` (a
    503 at the gateway, a retried handler in a consumer), not an unknown error; the retry works."""
    before = _migrations_before(16, tmp_path)
    admin = await asyncpg.connect(empty_database_url)
    running = await connect(empty_database_url, application_name="test")
    try:
        await apply_migrations(admin, before)
        company = await admin.fetchval(
            "INSERT INTO companies (id, name) VALUES (gen_random_uuid(), 'c') RETURNING id"
        )
        run_id = await admin.fetchval(
            "INSERT INTO eval_runs (id, company_id, config)"
            " VALUES (gen_random_uuid(), $1, '{}') RETURNING id",
            company,
        )
        read = "SELECT attempt, config FROM eval_runs WHERE id = $1"
        assert await running.fetchval(read, run_id, column=1) == {}  # prepared now, and kept
        await apply_migrations(admin)
        with pytest.raises(DatabaseUnavailable):
            async with in_transaction(running):
                await running.fetchrow(read, run_id)
        async with in_transaction(running):
            row = await running.fetchrow(read, run_id)
        assert row is not None
        assert (row["attempt"], row["config"]) == (0, {})
    finally:
        await close_quietly(running)
        await admin.close()
