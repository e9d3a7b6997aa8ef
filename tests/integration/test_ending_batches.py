"""Group commit of run endings (issue 16), against real PostgreSQL: endings handed over together
commit in one transaction, each run settled and charged once as if it ended alone; a run whose
lease was lost is answered LeaseLost and left unwritten without stopping the others; a cancel
requested meanwhile ends its run cancelled; each company's balance covers what it can and a run
needing the judge is only ended, in the same batch; one run's failure rolls the batch back and each
ending is then tried alone, so only that run fails; the slots a batch frees go to held runs, and
the last runs of a suite run ended together announce it done once."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from uuid import UUID

from consumers.executor.endings import Closed, PendingEnding, end_all
from consumers.executor.persistence import RunWriter, WriterSettings
from schemas.evaluation import Evaluation
from service.core.errors import DatabaseError, LeaseLost
from service.core.ids import new_id
from service.core.settings import Settings
from service.db import ledger, runs, turns
from service.db.claims import Lease
from service.db.postgres import Pool, connection
from service.domain.ledger import Debit
from service.domain.lifecycle import Ending
from tests.support.executor_runs import claimed_by, new_run
from tests.support.factories import make_company
from tests.support.scenarios import charges, event_types, make_case, read_run, trigger, turn_rows
from tests.support.suites import make_suite, start_in_process

PASSED = Evaluation(score=100.0, pass_fail=True, inconclusive=False, results=[])
DONE = Ending("persona_goodbye")


async def claimed(pool: Pool, settings: Settings) -> Lease:
    return await claimed_by(pool, await new_run(pool, settings), "ender")


def last_round(lease: Lease, ending: Ending | None, verdict: Evaluation | None = PASSED) -> PendingEnding:
    """Two priced rows (3 cents) and the ending."""
    said = [
        turns.NewTurn(new_id(), lease.run_id, 1, "persona", "bye", cost_microcents=1_000_000),
        turns.NewTurn(new_id(), lease.run_id, 2, "agent", "Goodbye.", cost_microcents=2_000_000),
    ]
    return PendingEnding(lease, said, ending, 20, datetime.now(UTC), verdict)


async def charge_transactions(pool: Pool, run_ids: list[UUID]) -> list[str]:
    """The id of the transaction that wrote each run's charge, in the order of `run_ids`."""
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT run_id, xmin::text AS xid FROM credit_ledger WHERE run_id = ANY($1::uuid[])", run_ids
        )
    by_run = {r["run_id"]: r["xid"] for r in rows}
    assert len(rows) == len(by_run)  # one charge per run
    return [by_run[run_id] for run_id in run_ids]


async def test_endings_handed_over_together_are_settled_and_charged_in_one_transaction(
    pool: Pool, settings: Settings
) -> None:
    leases = [await claimed(pool, settings) for _ in range(4)]
    outcomes = await end_all(pool, [last_round(lease, DONE) for lease in leases])

    ids = [lease.run_id for lease in leases]
    assert len(set(await charge_transactions(pool, ids))) == 1
    for lease in leases:
        closed = outcomes[lease.run_id]
        assert isinstance(closed, Closed)
        assert closed.ended is not None
        _, owed = closed.ended
        assert owed is not None
        assert (owed.taken_cents, owed.uncollected_cents) == (3, 0)
        async with connection(pool) as conn:
            stored = await runs.get_run(conn, lease.run_id)
        assert (stored.status, stored.queue_status, stored.score, stored.total_cost_cents) == (
            "completed",
            "done",
            100.0,
            3,
        )
        assert await event_types(pool, lease.run_id) == [
            *("queued", "started", "turn", "turn"),
            *("completed", "scored", "billed", "done"),
        ]


async def test_a_lost_lease_is_answered_alone_and_a_cancel_ends_its_run_cancelled(
    pool: Pool, settings: Settings
) -> None:
    ending, taken, cancelled, going_on = [await claimed(pool, settings) for _ in range(4)]
    async with connection(pool) as conn:
        await conn.execute("UPDATE eval_runs SET claimed_by = 'another' WHERE id = $1", taken.run_id)
        await conn.execute("UPDATE eval_runs SET cancel_requested_at = now() WHERE id = $1", cancelled.run_id)
    batch = [
        last_round(ending, DONE),
        last_round(taken, DONE),
        last_round(cancelled, None),  # a common round refused for the cancel
        last_round(going_on, None),  # no ending and no cancel: its round is written, it goes on
    ]
    outcomes = await end_all(pool, batch)

    assert isinstance(outcomes[taken.run_id], LeaseLost)
    assert await turn_rows(pool, taken.run_id) == []
    assert await event_types(pool, taken.run_id) == ["queued", "started"]
    going = outcomes[going_on.run_id]
    assert isinstance(going, Closed)
    assert going.ended is None
    assert len(going.rows) == 2
    async with connection(pool) as conn:
        assert (await runs.get_run(conn, going_on.run_id)).status == "running"
        assert (await runs.get_run(conn, cancelled.run_id)).status == "cancelled"
        assert (await runs.get_run(conn, ending.run_id)).queue_status == "done"
    assert await event_types(pool, cancelled.run_id) == [
        *("queued", "started", "turn", "turn"),
        *("cancelled", "billed", "done"),
    ]


async def test_a_batch_takes_what_each_balance_covers_and_leaves_a_judged_run_to_the_scorer(
    pool: Pool, settings: Settings
) -> None:
    short, judged, paid = [await claimed(pool, settings) for _ in range(3)]  # three companies
    async with connection(pool) as conn:
        company_id = (await runs.get_run(conn, short.run_id)).company_id
        await ledger.post_ledger_entry(  # 1 cent left of 10,000: the run costs 3
            conn, entry_id=new_id(), company_id=company_id, kind="deduction", amount_cents=-9_999
        )
    batch = [last_round(short, DONE), last_round(judged, DONE, verdict=None), last_round(paid, DONE)]
    outcomes = await end_all(pool, batch)

    owed: dict[UUID, Debit | None] = {}
    for lease in (short, paid):
        closed = outcomes[lease.run_id]
        assert isinstance(closed, Closed)
        assert closed.ended is not None
        owed[lease.run_id] = closed.ended[1]
    assert owed == {short.run_id: Debit(1, 2), paid.run_id: Debit(3, 0)}
    assert await charges(pool, short.run_id) == [-1]
    assert len(set(await charge_transactions(pool, [short.run_id, paid.run_id]))) == 1
    assert (await read_run(pool, short.run_id)).uncollected_cents == 2
    left = outcomes[judged.run_id]
    assert isinstance(left, Closed)
    assert left.ended is not None
    assert left.ended[1] is None  # ended, not settled: the scorer judges it, the biller bills it
    async with connection(pool) as conn:
        stored = await runs.get_run(conn, judged.run_id)
    assert (stored.status, stored.queue_status, stored.scored_at) == ("completed", "claimed", None)
    assert await charges(pool, judged.run_id) == []
    assert (await event_types(pool, judged.run_id))[-1] == "completed"


async def test_one_failing_ending_rolls_the_batch_back_and_the_others_end_alone(
    pool: Pool, settings: Settings
) -> None:
    first, broken, last = [await claimed(pool, settings) for _ in range(3)]
    bad = last_round(broken, DONE)
    twice = [bad.new[0], dataclasses.replace(bad.new[1], id=bad.new[0].id)]  # one row id twice
    outcomes = await end_all(
        pool, [last_round(first, DONE), dataclasses.replace(bad, new=twice), last_round(last, DONE)]
    )

    assert isinstance(outcomes[broken.run_id], DatabaseError)
    assert await turn_rows(pool, broken.run_id) == []
    async with connection(pool) as conn:
        assert (await runs.get_run(conn, broken.run_id)).status == "running"
    for lease in (first, last):
        closed = outcomes[lease.run_id]
        assert isinstance(closed, Closed)
        assert closed.ended is not None
    xids = await charge_transactions(pool, [first.run_id, last.run_id])
    assert xids[0] != xids[1]  # tried again one by one, after the batch failed


async def test_runs_ended_together_hand_their_freed_slots_on_to_held_runs(
    pool: Pool, settings: Settings
) -> None:
    tight = settings.model_copy(update={"max_inflight_runs_per_company": 2})
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(pool, company.id)
    run_ids = [await trigger(pool, tight, company.id, case_id) for _ in range(4)]
    assert [(await read_run(pool, r)).released_at is not None for r in run_ids] == [True, True, False, False]
    leases = [await claimed_by(pool, run_id, "ender") for run_id in run_ids[:2]]
    writer = RunWriter(pool, WriterSettings(tight.rate_card, 60, 3, inflight_cap=2))

    await asyncio.gather(*(writer.end(lease, DONE, 10, PASSED) for lease in leases))

    after = [await read_run(pool, r) for r in run_ids]
    assert [r.status for r in after] == ["completed", "completed", "queued", "queued"]
    assert all(r.released_at is not None for r in after)  # the two held runs took the freed slots


async def test_the_last_runs_of_a_suite_run_ended_together_announce_it_done_once(
    pool: Pool, settings: Settings
) -> None:
    company = await make_company(pool, balance_cents=10_000)
    suite_id = await make_suite(pool, company.id, cases=2, parallelism=2)
    started = await start_in_process(pool, settings, company.id, suite_id)
    leases = [await claimed_by(pool, run_id, "ender") for run_id in started.run_ids]

    await end_all(pool, [last_round(lease, DONE) for lease in leases])

    async with connection(pool) as conn:
        announced = await conn.fetch(
            "SELECT payload -> 'data' AS data FROM outbox"
            " WHERE type = 'agent_eval.suite_run.done' AND payload -> 'data' ->> 'suite_run_id' = $1",
            str(started.suite_run_id),
        )
        numbered = await conn.fetch(
            "SELECT suite_seq FROM eval_runs WHERE suite_run_id = $1 ORDER BY suite_seq", started.suite_run_id
        )
    assert len(announced) == 1
    assert (announced[0]["data"]["completed"], announced[0]["data"]["done"]) == (2, True)
    assert [r["suite_seq"] for r in numbered] == [1, 2]
