"""Migration 0018: a company's runs in flight are counted as they enter and leave flight, so a
release reads two rows instead of counting the runs. Every change of a run's in-flight state
(created released, released, ended, deleted) moves the counts, and the upgrade starts them from
the runs already in flight."""

from __future__ import annotations

import shutil
from pathlib import Path
from uuid import UUID

import asyncpg

from service.db.migrate import MIGRATIONS_DIR, apply_migrations

_COUNTED = "SELECT inflight_runs($1)"
_RUNS = """
SELECT count(*) FROM eval_runs
WHERE company_id = $1 AND released_at IS NOT NULL AND status IN ('queued', 'running')
"""
_COMPANY = "INSERT INTO companies (id, name) VALUES (gen_random_uuid(), 'c') RETURNING id"
_RUN = """
INSERT INTO eval_runs (id, company_id, config, released_at)
VALUES (gen_random_uuid(), $1, '{}', CASE WHEN $2 THEN now() END) RETURNING id
"""
_RELEASE = "UPDATE eval_runs SET released_at = now() WHERE id = $1"
_CLAIM = """
UPDATE eval_runs SET status = 'running', queue_status = 'claimed', claimed_by = 'x', attempt = 1,
    lease_expires_at = now() + interval '1 minute', started_at = now() WHERE id = $1
"""
_END = "UPDATE eval_runs SET status = $2, termination_reason = $3 WHERE id = $1"


async def _in_flight(conn: asyncpg.Connection, company: UUID) -> tuple[int, int]:
    """(what the counts say, what counting the runs says)."""
    return int(await conn.fetchval(_COUNTED, company)), int(await conn.fetchval(_RUNS, company))


async def test_every_change_of_a_runs_flight_moves_the_counts(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn)
        company, other = await conn.fetchval(_COMPANY), await conn.fetchval(_COMPANY)
        held = await conn.fetchval(_RUN, company, False)
        assert await _in_flight(conn, company) == (0, 0)
        released = await conn.fetchval(_RUN, company, True)  # created released
        assert await _in_flight(conn, company) == (1, 1)
        await conn.execute(_RELEASE, held)
        await conn.execute(_CLAIM, held)  # still in flight: no change
        assert await _in_flight(conn, company) == (2, 2)
        await conn.execute(_END, held, "completed", "max_turns")
        await conn.execute(_END, held, "completed", "max_turns")  # already out: no change
        assert await _in_flight(conn, company) == (1, 1)
        never_released = await conn.fetchval(_RUN, company, False)
        await conn.execute(_END, never_released, "cancelled", "cancelled")  # was never in flight
        assert await _in_flight(conn, company) == (1, 1)
        await conn.execute("DELETE FROM eval_runs WHERE id = $1", released)
        assert await _in_flight(conn, company) == (0, 0)
        await conn.fetchval(_RUN, other, True)
        assert await _in_flight(conn, other) == (1, 1)
        assert await _in_flight(conn, company) == (0, 0)
    finally:
        await conn.close()


async def test_a_rolled_back_change_moves_nothing(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn)
        company = await conn.fetchval(_COMPANY)
        run = await conn.fetchval(_RUN, company, True)
        tx = conn.transaction()
        await tx.start()
        await conn.execute(_END, run, "failed", "error")
        await tx.rollback()
        assert await _in_flight(conn, company) == (1, 1)
    finally:
        await conn.close()


async def test_the_upgrade_counts_the_runs_already_in_flight(empty_database_url: str, tmp_path: Path) -> None:
    before = tmp_path / "migrations"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) < 18:
            shutil.copy(path, before / path.name)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await apply_migrations(conn, before)
        company = await conn.fetchval(_COMPANY)
        for released in (True, True, True, False):
            await conn.fetchval(_RUN, company, released)
        ended = await conn.fetchval(_RUN, company, True)
        await conn.execute(_END, ended, "completed", "max_turns")
        assert [m.version for m in await apply_migrations(conn)][:1] == [18]  # then any later ones
        assert await _in_flight(conn, company) == (3, 3)
    finally:
        await conn.close()
