"""The relay's reads of the outbox cost what is pending, not what the event store keeps."""

from __future__ import annotations

from service.db import publishing
from service.db.postgres import Pool, transaction
from tests.support.factories import make_company

KEPT = 20_000  # published rows kept as the event store
PENDING = 10

_WRITE = """
INSERT INTO outbox (event_id, topic, key, type, company_id, payload)
SELECT gen_random_uuid(), 'agent-eval.ops-events.v1', 'k', 'agent_eval.test', $1, '{}'::jsonb
FROM generate_series(1, $2::int)
"""
# The relay published all but the newest few since the statistics were last gathered: the
# planner still believes pending ids are many and spread over the whole table.
_PUBLISH_ALL_BUT = """
DELETE FROM outbox_pending WHERE id NOT IN (SELECT id FROM outbox_pending ORDER BY id DESC LIMIT $1)
"""
_OUTBOX_ROWS_READ = """
SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables
WHERE relid = 'outbox'::regclass
"""


async def test_reading_what_is_pending_reads_only_pending_rows_of_a_large_outbox(pool: Pool) -> None:
    company = await make_company(pool)
    async with transaction(pool) as conn:
        await conn.execute(_WRITE, company.id, KEPT)
    async with transaction(pool) as conn:
        await conn.execute("ANALYZE outbox, outbox_pending")
    async with transaction(pool) as conn:
        await conn.execute(_PUBLISH_ALL_BUT, PENDING)
    async with transaction(pool) as conn:  # the counts are the backend's not yet reported: take differences
        before = await conn.fetchval(_OUTBOX_ROWS_READ)
        unsent = await publishing.fetch_unsent(conn, 500)
        after_unsent = await conn.fetchval(_OUTBOX_ROWS_READ)
        waiting, oldest = await publishing.unsent_stats(conn)
        read_for_stats = await conn.fetchval(_OUTBOX_ROWS_READ) - after_unsent
    read = after_unsent - before
    assert [row.id for row in unsent] == sorted(row.id for row in unsent)
    assert len(unsent) == PENDING
    assert unsent[0].id > KEPT - PENDING  # the newest rows, in id order
    assert read == PENDING  # one look-up each; as a join it walked the table from its first row
    assert (waiting, oldest) == (PENDING, min(row.created_at for row in unsent))
    assert read_for_stats == PENDING
