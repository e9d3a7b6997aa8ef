"""The scorer and the biller on real PostgreSQL: rows written, events emitted, money moved —
and a second delivery of the same event changing nothing and emitting nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest

from consumers.biller import bill_run
from consumers.judge import Judge
from consumers.llm.openai_compat import OpenAICompatibleProvider
from consumers.llm.providers import Providers
from consumers.scorer import Scorer
from schemas.api import TurnRole
from schemas.evaluation import Evaluation
from service.core.settings import ProviderConfig, Settings
from service.db import companies, ledger, outbox, runs
from service.db.postgres import Pool, connection
from tests.support.factories import make_company, make_finished_run
from tests.support.fake_llm import FakeLLM, Reply, verdict

SAYS_HELLO = {"type": "must_say", "pattern": "hello", "weight": 1}
NO_SORRY = {"type": "must_not_say", "pattern": "sorry", "weight": 1}
JUDGED = {"type": "custom_llm_judge", "rubric": "The agent is polite.", "samples": 3, "weight": 2}
CONVERSATION: list[tuple[TurnRole, str | None, int]] = [
    ("persona", "Hi there", 1_000_000),
    ("agent", "Hello! How can I help?", 2_500_000),
]


@pytest.fixture
async def scorer(pool: Pool, settings: Settings, llm: FakeLLM) -> AsyncIterator[Scorer]:
    provider = OpenAICompatibleProvider(ProviderConfig(base_url=llm.base_url, max_retries=0), None)
    providers = Providers({"fake": provider})
    judge_settings = settings.model_copy(update={"judge_model": "fake:judge"})
    yield Scorer(pool, judge_settings, Judge(providers, "fake:judge", attempts=2))
    await providers.close()


async def _events(pool: Pool, run_id: UUID) -> list[str]:
    async with connection(pool) as conn:
        rows = await conn.fetch("SELECT type FROM outbox WHERE run_id = $1 ORDER BY sequence", run_id)
    return [r["type"].removeprefix("agent_eval.run.") for r in rows]


async def _run(pool: Pool, run_id: UUID) -> runs.RunRow:
    async with connection(pool) as conn:
        return await runs.get_run(conn, run_id)


async def _balance(pool: Pool, company_id: UUID) -> int:
    async with connection(pool) as conn:
        return (await companies.get_company(conn, company_id)).balance_cents


async def test_a_completed_run_is_scored_once_with_its_judge_calls_priced(
    pool: Pool, scorer: Scorer, llm: FakeLLM
) -> None:
    company = await make_company(pool, balance_cents=1_000)
    run = await make_finished_run(
        pool, company.id, criteria=[SAYS_HELLO, NO_SORRY, JUDGED], turns=CONVERSATION
    )
    llm.script(verdict(True, "polite at turn 2"), verdict(False, "curt"), verdict(True, "polite at turn 2"))
    await scorer.score(run.id)
    scored = await _run(pool, run.id)
    assert scored.scored_at is not None
    evaluation = Evaluation.model_validate(scored.evaluation)
    assert [(r.outcome, r.reason) for r in evaluation.results] == [
        ("passed", "matched at turn 2"),
        ("passed", None),
        ("passed", "polite at turn 2"),
    ]
    assert evaluation.results[2].agreement == "2/3"
    assert (scored.score, scored.pass_fail, evaluation.inconclusive) == (100.0, True, False)
    # Three judge calls of 12 input and 7 output tokens at the default card (200/1000 cents per 1M).
    assert (scored.judge_input_tokens, scored.judge_output_tokens) == (36, 21)
    assert scored.judge_cost_microcents == 3 * (12 * 200 + 7 * 1000)
    assert scored.judge_rate_card_version == "2026-11-default"
    assert await _events(pool, run.id) == ["scored"]

    await scorer.score(run.id)  # the same event delivered again
    assert len(llm.requests) == 3
    assert await _run(pool, run.id) == scored
    assert await _events(pool, run.id) == ["scored"]


async def test_an_unanswering_judge_leaves_the_run_inconclusive_not_failed(
    pool: Pool, scorer: Scorer, llm: FakeLLM
) -> None:
    company = await make_company(pool, balance_cents=1_000)
    judged_once = {**JUDGED, "samples": 1}
    run = await make_finished_run(pool, company.id, criteria=[SAYS_HELLO, judged_once], turns=CONVERSATION)
    llm.script(Reply(text="I think it was fine"), Reply(text="{not json"))
    await scorer.score(run.id)
    scored = await _run(pool, run.id)
    evaluation = Evaluation.model_validate(scored.evaluation)
    assert [r.outcome for r in evaluation.results] == ["passed", "inconclusive"]
    assert (scored.score, scored.pass_fail, evaluation.inconclusive) == (100.0, None, True)
    assert scored.judge_cost_microcents == 2 * (12 * 200 + 7 * 1000)  # unusable answers still cost


async def test_only_completed_runs_are_scored(pool: Pool, scorer: Scorer) -> None:
    company = await make_company(pool)
    for status in ("failed", "cancelled"):
        run = await make_finished_run(pool, company.id, status=status, criteria=[SAYS_HELLO])
        await scorer.score(run.id)
        assert (await _run(pool, run.id)).scored_at is None
        assert await _events(pool, run.id) == []


async def test_no_criteria_scores_100(pool: Pool, scorer: Scorer) -> None:
    company = await make_company(pool)
    run = await make_finished_run(pool, company.id, turns=CONVERSATION)
    await scorer.score(run.id)
    scored = await _run(pool, run.id)
    assert (scored.score, scored.pass_fail) == (100.0, True)


async def _listen(database_url: str, channel: str) -> tuple[asyncpg.Connection, asyncio.Queue[str]]:
    conn = await asyncpg.connect(database_url)
    queue: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener(channel, lambda *args: queue.put_nowait(args[-1]))
    return conn, queue


async def test_a_scored_run_is_charged_once_split_by_role_and_announced(
    pool: Pool, scorer: Scorer, llm: FakeLLM, database_url: str
) -> None:
    company = await make_company(pool, balance_cents=1_000)
    run = await make_finished_run(pool, company.id, criteria=[{**JUDGED, "samples": 1}], turns=CONVERSATION)
    llm.script(verdict(True))
    await scorer.score(run.id)
    listener, notified = await _listen(database_url, runs.DONE_CHANNEL)
    try:
        assert await bill_run(pool, run.id) is True
        assert await asyncio.wait_for(notified.get(), 10) == str(run.id)
    finally:
        await listener.close()
    done = await _run(pool, run.id)
    # persona 1.0 + agent 2.5 + judge 0.0094 cents = 3.5094 → 4 cents, split 2 / 1 / 1? largest remainder:
    # agent 2 (.5), persona 1 (.0), judge 0 (.0094) → 3; one more cent to the largest fraction (agent).
    assert (done.agent_cost_cents, done.persona_cost_cents, done.judge_cost_cents) == (3, 1, 0)
    assert done.total_cost_cents == 4
    assert (done.agent_input_tokens, done.persona_input_tokens) == (10, 10)
    assert (done.queue_status, done.uncollected_cents, done.error) == ("done", 0, None)
    assert await _events(pool, run.id) == ["scored", "billed", "done"]
    assert await _balance(pool, company.id) == 996
    async with connection(pool) as conn:
        charges = [
            e for e in await ledger.list_ledger_entries(conn, company.id) if e.kind == "eval_run_charge"
        ]
    assert [(e.amount_cents, e.run_id) for e in charges] == [(-4, run.id)]

    assert await bill_run(pool, run.id) is False  # redelivered
    assert await _balance(pool, company.id) == 996
    assert await _events(pool, run.id) == ["scored", "billed", "done"]


async def test_a_short_balance_is_taken_whole_and_the_rest_is_uncollected(pool: Pool, scorer: Scorer) -> None:
    company = await make_company(pool, balance_cents=3)
    run = await make_finished_run(pool, company.id, turns=[("agent", "Hello", 7_200_000)])
    await scorer.score(run.id)
    await bill_run(pool, run.id)
    done = await _run(pool, run.id)
    assert (done.total_cost_cents, done.uncollected_cents, done.error, done.status) == (
        8,
        5,
        None,
        "completed",
    )
    assert await _balance(pool, company.id) == 0
    async with connection(pool) as conn:
        assert await ledger.reconcile(conn) == []


async def test_an_empty_balance_or_a_free_run_writes_no_ledger_row(pool: Pool, scorer: Scorer) -> None:
    broke = await make_company(pool, name="Broke")
    costly = await make_finished_run(pool, broke.id, turns=[("agent", "Hello", 1_000_000)])
    rich = await make_company(pool, name="Rich", balance_cents=50)
    free = await make_finished_run(pool, rich.id, turns=[("agent", "Hello", 0)])
    for run in (costly, free):
        await scorer.score(run.id)
        assert await bill_run(pool, run.id) is True
    assert (await _run(pool, costly.id)).uncollected_cents == 1
    assert (await _run(pool, free.id)).total_cost_cents == 0
    async with connection(pool) as conn:
        assert [e.kind for e in await ledger.list_ledger_entries(conn, broke.id)] == []
        assert [e.kind for e in await ledger.list_ledger_entries(conn, rich.id)] == ["grant"]


async def test_failed_and_cancelled_runs_are_billed_for_what_they_used_without_scoring(pool: Pool) -> None:
    company = await make_company(pool, balance_cents=100)
    for status in ("failed", "cancelled"):
        run = await make_finished_run(pool, company.id, status=status, turns=CONVERSATION)
        assert await bill_run(pool, run.id) is True
        done = await _run(pool, run.id)
        assert (done.queue_status, done.total_cost_cents, done.scored_at) == ("done", 4, None)
        assert await _events(pool, run.id) == ["billed", "done"]
    assert await _balance(pool, company.id) == 92


async def test_a_completed_run_is_not_billed_before_it_is_scored(pool: Pool) -> None:
    company = await make_company(pool, balance_cents=100)
    run = await make_finished_run(pool, company.id, turns=CONVERSATION)
    assert await bill_run(pool, run.id) is False
    assert (await _run(pool, run.id)).queue_status == "claimed"
    assert await _balance(pool, company.id) == 100


async def test_concurrent_billers_charge_a_run_once(pool: Pool, scorer: Scorer) -> None:
    company = await make_company(pool, balance_cents=100)
    run = await make_finished_run(pool, company.id, turns=CONVERSATION)
    await scorer.score(run.id)
    outcomes = await asyncio.gather(*(bill_run(pool, run.id) for _ in range(5)))
    assert sorted(outcomes) == [False, False, False, False, True]
    assert await _balance(pool, company.id) == 96
    async with connection(pool) as conn:
        assert len(await outbox.list_run_event_bodies(conn, run.id)) == 3  # scored, billed, done
