"""Listing runs by creation day reads that day's runs, not every newer run: ids are UUIDv7, so a
range of creation times is a range of the primary key (the dashboard's and the API's filters)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from service.core.ids import first_id_at
from service.db import run_lists
from service.db.postgres import Pool, transaction
from tests.support.factories import make_company, make_run

RUNS = 2_000
HOUR = timedelta(hours=1)
_COLUMNS = """
SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) FROM information_schema.columns
WHERE table_name = 'eval_runs' AND column_name NOT IN ('id', 'created_at')
"""
_ROWS_READ = """
SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables
WHERE relid = 'eval_runs'::regclass
"""


async def _runs_an_hour_apart(pool: Pool, now: datetime) -> list[tuple[UUID, datetime]]:
    """RUNS copies of one run, created an hour apart going back from `now`, with matching ids."""
    company = await make_company(pool)
    template = await make_run(pool, company.id)
    made = [(now - n * HOUR, n) for n in range(1, RUNS + 1)]
    ids = [UUID(int=first_id_at(at).int | n) for at, n in made]
    async with transaction(pool) as conn:
        columns = await conn.fetchval(_COLUMNS)
        await conn.execute(
            f"""INSERT INTO eval_runs (id, created_at, {columns})
                SELECT m.id, m.at, {columns}
                FROM unnest($2::uuid[], $3::timestamptz[]) AS m (id, at), eval_runs
                WHERE eval_runs.id = $1""",
            template.id,
            ids,
            [at for at, _ in made],
        )
        await conn.execute("ANALYZE eval_runs")
    return list(zip(ids, (at for at, _ in made), strict=True))


async def test_the_oldest_day_of_runs_is_found_without_reading_the_newer_ones(pool: Pool) -> None:
    now = datetime.now(UTC)
    made = await _runs_an_hour_apart(pool, now)
    since, until = now - RUNS * HOUR - HOUR / 2, now - (RUNS - 24) * HOUR + HOUR / 2  # the oldest day
    company_id = await _company_of(pool, made[0][0])
    filters = run_lists.RunFilters(created_after=since, created_before=until)
    async with transaction(pool) as conn:
        before = await conn.fetchval(_ROWS_READ)
        page = await run_lists.list_runs_before(conn, company_id, filters, before=None, limit=50)
        read = await conn.fetchval(_ROWS_READ) - before
    expected = [run_id for run_id, at in made if since < at < until]
    assert len(expected) == 25
    assert [run.id for run in page] == expected  # newest first
    assert read <= 2 * len(expected)  # without the id range: every newer run, about 2,000


async def _company_of(pool: Pool, run_id: UUID) -> UUID:
    async with transaction(pool) as conn:
        company_id: UUID = await conn.fetchval("SELECT company_id FROM eval_runs WHERE id = $1", run_id)
    return company_id
