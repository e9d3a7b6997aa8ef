"""A conversation whose verdict needs no judge is settled by the executor in the transaction that
ends it (ended, scored, billed, done, charged), against real PostgreSQL with no scorer or biller
running; a run that needs the judge is left to them; and those two roles skip, unread, an event
that already says its run is done."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from consumers.biller import Biller
from consumers.executor.batching import LANES
from consumers.executor.conversation import Engine
from consumers.executor.worker import Executor
from consumers.judge import Judge
from consumers.llm.providers import Providers
from consumers.scorer import Scorer
from schemas.evaluation import Evaluation
from schemas.events import EventType, RunCompleted, RunFailed
from schemas.rates import DEFAULT_RATE_CARD, Price, RolePrices
from schemas.runs import RunConfig
from service.core.ids import new_id
from service.core.settings import ProviderConfig, Settings
from service.db import companies, dispatch, rounds, runs, turns
from service.db.postgres import Connection, Pool, connection
from service.domain.scoring import evaluate
from tests.support.executor_runs import ECHO_AGENT, engine_of, lock_waiters, played_to_the_end, run_request
from tests.support.factories import make_company, make_finished_run
from tests.support.scenarios import (
    charges,
    cost_cents,
    event_types,
    make_case,
    scripted_persona,
    trigger,
    turn_rows,
)
from tests.support.waiting import eventually

TALK = scripted_persona(["hello", "I want a refund", "bye"])
NO_JUDGE = [{"type": "must_say", "pattern": "Right"}, {"type": "must_not_say", "pattern": "sorry"}]
JUDGED = [*NO_JUDGE, {"type": "custom_llm_judge", "rubric": "The agent was polite."}]
EXPENSIVE = DEFAULT_RATE_CARD.model_copy(
    update={
        "version": "expensive",
        "persona": RolePrices(
            input_cents_per_million=Decimal(0),
            output_cents_per_million=Decimal(0),
            models={
                "scripted": Price(input_cents_per_million=Decimal(10**8), output_cents_per_million=Decimal(0))
            },
        ),
    }
)


async def run_of(pool: Pool, settings: Settings, *, balance_cents: int = 10_000, **case: Any) -> UUID:
    company = await make_company(pool, balance_cents=balance_cents)
    case_id = await make_case(pool, company.id, agent=ECHO_AGENT, persona=TALK, max_turns=100, **case)
    return await trigger(pool, settings, company.id, case_id)


async def played(pool: Pool, settings: Settings, engine: Engine, run_id: UUID) -> runs.RunRow:
    """The run after an executor alone (no scorer, no biller) played it to its end."""
    await played_to_the_end(Executor(pool, settings, engine, name="only"), pool, run_id)
    async with connection(pool) as conn:
        return await runs.get_run(conn, run_id)


async def waiting_to_charge(pool: Pool) -> int:
    """Sessions waiting inside PostgreSQL for a lock while charging a run."""
    return await lock_waiters(pool, "%charge_run%")


async def final_events(pool: Pool, run_id: UUID) -> list[tuple[str, dict[str, Any], int]]:
    """The events after the last turn: type, data, and the id of the transaction that wrote them."""
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT type, payload -> 'data' AS data, xmin::text::bigint AS xid FROM outbox"
            " WHERE run_id = $1 AND sequence IS NOT NULL AND type NOT IN"
            " ('agent_eval.run.queued', 'agent_eval.run.started', 'agent_eval.run.turn') ORDER BY sequence",
            run_id,
        )
    return [(r["type"].removeprefix("agent_eval.run."), r["data"], r["xid"]) for r in rows]


async def charge_xid(conn: Connection, run_id: UUID) -> int:
    xid: int = await conn.fetchval(
        "SELECT xmin::text::bigint FROM credit_ledger WHERE run_id = $1 AND kind = 'eval_run_charge'", run_id
    )
    return xid


async def test_a_run_needing_no_judge_is_ended_scored_billed_and_charged_in_one_transaction(
    pool: Pool, settings: Settings, engine: Engine
) -> None:
    run_id = await run_of(pool, settings, success_criteria=NO_JUDGE)
    run = await played(pool, settings, engine, run_id)
    rows = await turn_rows(pool, run_id)
    assert (run.status, run.queue_status, run.termination_reason) == ("completed", "done", "persona_goodbye")
    assert (run.score, run.pass_fail, run.scored_at is not None, run.done_at is not None) == (
        100.0,
        True,
        True,
        True,
    )
    assert run.total_cost_cents == cost_cents(rows) > 0
    assert await charges(pool, run_id) == [-run.total_cost_cents]
    assert (await event_types(pool, run_id))[-4:] == ["completed", "scored", "billed", "done"]
    final = await final_events(pool, run_id)
    assert [(t, d["queue_status"], d["score"], d["total_cost_cents"]) for t, d, _ in final] == [
        (t, "done", 100.0, run.total_cost_cents) for t in ("completed", "scored", "billed", "done")
    ]
    async with connection(pool) as conn:
        assert {xid for _, _, xid in final} == {await charge_xid(conn, run_id)}  # one transaction
        transcript = turns.transcript_of(await turns.list_turns(conn, run_id))
    # The verdict is the scorer's own, reached from the persisted transcript.
    case = RunConfig.model_validate(run.config).case
    expected = evaluate(
        case.success_criteria, transcript, {}, pass_threshold=case.pass_threshold, flow_agent=False
    )
    assert Evaluation.model_validate(run.evaluation) == expected


async def test_a_failing_verdict_is_settled_as_failed_with_its_reasons(
    pool: Pool, settings: Settings, engine: Engine
) -> None:
    criteria = [{"type": "must_say", "pattern": "refund approved"}, *NO_JUDGE]
    run = await played(pool, settings, engine, await run_of(pool, settings, success_criteria=criteria))
    assert (run.queue_status, run.pass_fail) == ("done", False)
    assert run.score == pytest.approx(200 / 3)
    assert [r.passed for r in Evaluation.model_validate(run.evaluation).results] == [False, True, True]


async def test_a_run_needing_the_judge_is_only_ended_and_left_to_the_scorer_and_the_biller(
    pool: Pool, settings: Settings, engine: Engine
) -> None:
    # A judge model that is configured (the trigger checks it) and never called here.
    unused = ProviderConfig(base_url="http://127.0.0.1:9/v1", max_retries=0)
    settings = settings.model_copy(update={"providers": {"judge": unused}, "judge_model": "judge:j"})
    run_id = await run_of(pool, settings, success_criteria=JUDGED)
    run = await played(pool, settings, engine, run_id)
    assert (run.status, run.queue_status, run.scored_at, run.total_cost_cents) == (
        "completed",
        "claimed",
        None,
        0,
    )
    assert (await event_types(pool, run_id))[-1] == "completed"
    assert [d["queue_status"] for _, d, _ in await final_events(pool, run_id)] == ["claimed"]
    assert await charges(pool, run_id) == []


async def transactions_of_turns(pool: Pool, run_id: UUID) -> int:
    """How many transactions wrote the run's transcript rows."""
    async with connection(pool) as conn:
        return int(
            await conn.fetchval(
                "SELECT count(DISTINCT xmin::text) FROM eval_run_turns WHERE run_id = $1", run_id
            )
        )


def said(rows: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    keys = ("turn_number", "role", "text", "input_tokens", "output_tokens", "cost_microcents")
    return [tuple(row[key] for key in keys) for row in rows]


async def test_a_scripted_conversation_without_latency_is_written_with_its_end_in_one_transaction(
    pool: Pool, settings: Settings, engine: Engine
) -> None:
    at_once = await run_of(pool, settings, success_criteria=NO_JUDGE)
    run = await played(pool, settings, engine, at_once)
    # The same conversation with a scripted model that takes a moment: a commit per round.
    slow_settings = settings.model_copy(update={"scripted_latency_s": 0.001})
    slow = await run_of(pool, slow_settings, success_criteria=NO_JUDGE)
    async with engine_of(slow_settings, pool) as slow_engine:
        slow_run = await played(pool, slow_settings, slow_engine, slow)

    rows, slow_rows = await turn_rows(pool, at_once), await turn_rows(pool, slow)
    assert said(rows) == said(slow_rows)
    assert len(rows) == 7  # three lines and three answers, then the persona's end_conversation call
    assert await transactions_of_turns(pool, at_once) == 1
    assert await transactions_of_turns(pool, slow) == 7
    assert await event_types(pool, at_once) == await event_types(pool, slow)
    assert (run.status, run.queue_status, run.total_cost_cents, run.score) == (
        slow_run.status,
        slow_run.queue_status,
        slow_run.total_cost_cents,
        slow_run.score,
    )


async def test_a_run_cancelled_mid_conversation_is_settled_unscored_for_the_turns_it_used(
    pool: Pool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A scripted model that takes a moment commits turn by turn (without it, the whole
    # conversation is computed at once and written with its end).
    settings = settings.model_copy(update={"scripted_latency_s": 0.001})
    run_id = await run_of(pool, settings, success_criteria=NO_JUDGE)
    persist_rounds = rounds.persist_rounds

    async def write_then_cancel(conn: Connection, pending: Any, **kwargs: Any) -> Any:
        written = await persist_rounds(conn, pending, **kwargs)
        async with connection(pool) as other:
            await dispatch.request_cancel(other, run_id)
        return written

    monkeypatch.setattr(rounds, "persist_rounds", write_then_cancel)
    async with engine_of(settings, pool) as engine:
        run = await played(pool, settings, engine, run_id)
    rows = await turn_rows(pool, run_id)
    assert (run.status, run.termination_reason, run.queue_status) == ("cancelled", "cancelled", "done")
    assert (run.evaluation, run.score, run.scored_at) == (None, None, None)
    assert 0 < len(rows) < 6  # it stopped at the first turn boundary after the request
    assert run.total_cost_cents == cost_cents(rows)
    assert await charges(pool, run_id) == ([-run.total_cost_cents] if run.total_cost_cents else [])
    assert (await event_types(pool, run_id))[-3:] == ["cancelled", "billed", "done"]


async def test_a_short_balance_at_a_settled_end_is_taken_whole_and_the_rest_is_uncollected(
    pool: Pool, settings: Settings
) -> None:
    expensive = settings.model_copy(update={"rate_card": EXPENSIVE})
    async with engine_of(expensive, pool) as built:
        run_id = await run_of(pool, expensive, balance_cents=3, success_criteria=NO_JUDGE)
        run = await played(pool, expensive, built, run_id)
    assert run.queue_status == "done"
    assert run.total_cost_cents > 3
    assert (run.uncollected_cents, await charges(pool, run_id)) == (run.total_cost_cents - 3, [-3])
    async with connection(pool) as conn:
        assert (await companies.get_company(conn, run.company_id)).balance_cents == 0


def announcing(run: runs.RunRow, kind: type[RunCompleted] | type[RunFailed], queue_status: str) -> Any:
    summary = run.summary().model_copy(update={"queue_status": queue_status})
    return kind.model_validate(
        {
            "id": new_id(),
            "type": EventType.RUN_COMPLETED if kind is RunCompleted else EventType.RUN_FAILED,
            "time": datetime.now(UTC),
            "company_id": run.company_id,
            "run_id": run.id,
            "sequence": 5,
            "data": summary,
        }
    )


async def test_the_scorer_and_the_biller_skip_unread_an_event_that_says_its_run_is_done(
    pool: Pool, settings: Settings
) -> None:
    company = await make_company(pool, balance_cents=100)
    completed = await make_finished_run(pool, company.id, turns=[("agent", "hi", 2_000_000)])
    failed = await make_finished_run(pool, company.id, status="failed", turns=[("agent", "hi", 2_000_000)])
    providers = Providers({})
    scorer = Scorer(pool, settings, Judge(providers, settings.judge_model, 1))
    biller = Biller(pool)
    # Events as the executor's settled end writes them: the rows here are not done, so handling
    # either would change them; skipping leaves them as they are.
    await scorer.handle(announcing(completed, RunCompleted, "done"))
    await biller.handle(announcing(failed, RunFailed, "done"))
    async with connection(pool) as conn:
        assert (await runs.get_run(conn, completed.id)).scored_at is None
        assert (await runs.get_run(conn, failed.id)).queue_status == "claimed"
    # The same events as the conversation's plain end writes them are handled.
    await scorer.handle(announcing(completed, RunCompleted, "claimed"))
    await biller.handle(announcing(failed, RunFailed, "claimed"))
    async with connection(pool) as conn:
        assert (await runs.get_run(conn, completed.id)).scored_at is not None
        assert (await runs.get_run(conn, failed.id)).queue_status == "done"
    await providers.close()


async def test_endings_ready_together_wait_in_the_process_and_commit_as_one_transaction(
    pool: Pool, settings: Settings, engine: Engine
) -> None:
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(pool, company.id, agent=ECHO_AGENT, persona=TALK, success_criteria=NO_JUDGE)
    run_ids = [await trigger(pool, settings, company.id, case_id) for _ in range(6)]
    executor = Executor(pool, settings, engine, name="only")
    async with connection(pool) as holder, holder.transaction():
        # Someone else holds the company's row (as another process's ending does until its commit).
        await holder.execute("SELECT 1 FROM companies WHERE id = $1 FOR NO KEY UPDATE", company.id)
        for run_id in run_ids:
            await executor.handle(await run_request(pool, run_id))
        # Each lane's batch waits on the company's row.
        await eventually(lambda: waiting_to_charge(pool), until=lambda n: n == LANES, what="the endings")
        await asyncio.sleep(0.5)  # the other endings are ready by now, and wait in the process
        assert await waiting_to_charge(pool) == LANES
    await eventually(lambda: asyncio.sleep(0, executor.playing()), until=lambda p: not p, what="the ends")
    await executor.close()
    async with connection(pool) as conn:
        transactions = await conn.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM credit_ledger WHERE run_id = ANY($1::uuid[])", run_ids
        )
    # The first batch of each lane, then the endings that waited meanwhile together (one each: 6).
    assert transactions == LANES + 1
    for run_id in run_ids:
        async with connection(pool) as conn:
            assert (await runs.get_run(conn, run_id)).queue_status == "done"
        assert len(await charges(pool, run_id)) == 1
