"""Group commit of conversation rounds (issue 16), against real PostgreSQL: rounds of many runs
ready together are written by one statement, each run's rows and `run.turn` events numbered as
if written alone; a run whose lease was lost or whose cancel was requested is left out of the
batch without stopping the others; a failed statement fails every round in it and writes none."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from uuid import UUID

from consumers.executor.batching import RoundBatcher
from schemas.api import TurnRole
from service.core.errors import DatabaseError
from service.core.ids import new_id
from service.core.settings import Settings
from service.db import rounds, turns
from service.db.claims import Lease
from service.db.postgres import Pool, connection
from tests.support.executor_runs import claimed_by, new_run
from tests.support.scenarios import event_types, turn_rows


async def claimed(pool: Pool, settings: Settings) -> Lease:
    return await claimed_by(pool, await new_run(pool, settings), "batcher")


HELLO = ("hello", "Right.")
BYE = ("bye", "Right.")


def role_of(number: int) -> TurnRole:
    return "persona" if number % 2 else "agent"


def said(lease: Lease, first: int, *lines: str) -> list[turns.NewTurn]:
    return [
        turns.NewTurn(new_id(), lease.run_id, first + i, role_of(first + i), line, attempt=lease.attempt)
        for i, line in enumerate(lines)
    ]


def pending(lease: Lease, first: int, *lines: str) -> rounds.PendingRound:
    return rounds.PendingRound(lease, said(lease, first, *lines), active_ms=10 * first, now=datetime.now(UTC))


async def test_rounds_of_several_runs_are_written_by_one_statement_each_numbered_alone(
    pool: Pool, settings: Settings
) -> None:
    leases = [await claimed(pool, settings) for _ in range(5)]
    async with connection(pool) as conn:
        written = await rounds.persist_rounds(
            conn, [pending(lease, 1, "hello", "Right.") for lease in leases]
        )
    assert set(written) == {lease.run_id for lease in leases}
    async with connection(pool) as conn:
        again = await rounds.persist_rounds(
            conn, [pending(lease, 3, "bye", "Right.") for lease in leases[:3]]
        )
    assert set(again) == {lease.run_id for lease in leases[:3]}
    for lease in leases[:3]:
        rows = await turn_rows(pool, lease.run_id)
        assert [(r["turn_number"], r["text"]) for r in rows] == [
            (1, "hello"),
            (2, "Right."),
            (3, "bye"),
            (4, "Right."),
        ]
        assert await event_types(pool, lease.run_id) == ["queued", "started", "turn", "turn", "turn", "turn"]
        assert await _sequences(pool, lease.run_id) == [1, 2, 3, 4, 5, 6]
    assert await event_types(pool, leases[4].run_id) == ["queued", "started", "turn", "turn"]


async def test_a_run_whose_lease_is_lost_or_cancel_requested_is_left_out_and_the_rest_written(
    pool: Pool, settings: Settings
) -> None:
    kept, taken, cancelled = [await claimed(pool, settings) for _ in range(3)]
    async with connection(pool) as conn:
        await conn.execute("UPDATE eval_runs SET claimed_by = 'another' WHERE id = $1", taken.run_id)
        await conn.execute("UPDATE eval_runs SET cancel_requested_at = now() WHERE id = $1", cancelled.run_id)
        written = await rounds.persist_rounds(
            conn, [pending(lease, 1, "hello", "Right.") for lease in (kept, taken, cancelled)]
        )
    assert set(written) == {kept.run_id}
    assert len(await turn_rows(pool, kept.run_id)) == 2
    assert await turn_rows(pool, taken.run_id) == []
    assert await turn_rows(pool, cancelled.run_id) == []
    assert await event_types(pool, cancelled.run_id) == ["queued", "started"]


async def test_rounds_handed_over_together_share_statements_and_each_gets_its_answer(
    pool: Pool, settings: Settings
) -> None:
    leases = [await claimed(pool, settings) for _ in range(20)]
    taken = leases[7]
    async with connection(pool) as conn:
        await conn.execute("UPDATE eval_runs SET claimed_by = 'another' WHERE id = $1", taken.run_id)
    batcher = RoundBatcher(pool, max_batch=8)
    answers = await asyncio.gather(*(batcher.write(pending(lease, 1, "hi", "Right.")) for lease in leases))
    for lease, answer in zip(leases, answers, strict=True):
        assert (answer is None) == (lease == taken)
        if answer is not None:
            assert [row.turn_number for row in answer.rows] == [1, 2]
    statements = await _statements_that_wrote(pool, [lease.run_id for lease in leases if lease != taken])
    assert statements == 3  # 19 rounds handed over at once, at most 8 a statement: 8 + 8 + 3


async def test_a_failed_statement_fails_every_round_in_it_and_writes_none(
    pool: Pool, settings: Settings
) -> None:
    good = await claimed(pool, settings)
    broken = await claimed(pool, settings)
    batcher = RoundBatcher(pool)
    bad = pending(broken, 1, "hello", "Right.")
    duplicate_id = bad.new[0].id
    bad_rows = [bad.new[0], dataclasses.replace(bad.new[1], id=duplicate_id)]  # one id twice
    results = await asyncio.gather(
        batcher.write(pending(good, 1, "hello", "Right.")),
        batcher.write(rounds.PendingRound(broken, bad_rows, 10, bad.now)),
        return_exceptions=True,
    )
    assert any(isinstance(r, DatabaseError) for r in results)
    failed = [lease for lease, r in zip((good, broken), results, strict=True) if isinstance(r, DatabaseError)]
    assert broken in failed
    for lease in failed:
        assert await turn_rows(pool, lease.run_id) == []
        assert await event_types(pool, lease.run_id) == ["queued", "started"]


async def _sequences(pool: Pool, run_id: UUID) -> list[int]:
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT sequence, (payload->>'sequence')::int AS in_body FROM outbox"
            " WHERE run_id = $1 AND sequence IS NOT NULL ORDER BY sequence",
            run_id,
        )
    assert all(r["sequence"] == r["in_body"] for r in rows)
    return [r["sequence"] for r in rows]


async def _statements_that_wrote(pool: Pool, run_ids: list[UUID]) -> int:
    """Runs advanced by one statement share its transaction's `now()`: distinct times, statements."""
    async with connection(pool) as conn:
        count: int = await conn.fetchval(
            "SELECT count(DISTINCT updated_at) FROM eval_runs WHERE id = ANY($1::uuid[])", run_ids
        )
    return count


_RUNS_READ = """
SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables
WHERE relid = 'eval_runs'::regclass
"""


async def test_a_batch_reads_only_its_own_runs_however_many_others_are_running(
    pool: Pool, settings: Settings
) -> None:
    mine = [await claimed(pool, settings) for _ in range(10)]
    async with connection(pool) as conn:
        await conn.execute(
            "INSERT INTO eval_runs (id, company_id, config, status, queue_status)"
            " SELECT gen_random_uuid(), company_id, config, 'queued', 'pending'"
            " FROM eval_runs, generate_series(1, 2000) WHERE id = $1",
            mine[0].run_id,
        )
        await conn.execute("ANALYZE eval_runs")  # the statistics say: hardly anything runs
        await conn.execute("UPDATE eval_runs SET status = 'running' WHERE status = 'queued'")
        async with conn.transaction():  # the counts are the backend's not yet reported: take a difference
            before = await conn.fetchval(_RUNS_READ)
            written = await rounds.persist_rounds(conn, [pending(lease, 1, *HELLO) for lease in mine])
            read = await conn.fetchval(_RUNS_READ) - before
    assert set(written) == {lease.run_id for lease in mine}
    # Per run about four: a look-up to lock it, one to update it, one per turn (its foreign key).
    # As a join it read every running run: 2,042 here.
    assert read <= 5 * len(mine)
