"""Runs executed end to end in this process (relay, executor, scorer, biller on the in-process
bus, real PostgreSQL): the transcript, its prices, the events, the score and the one charge."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.bus.memory import InProcessBus
from service.db.core import Pool
from service.settings import Settings
from tests.support.factories import make_company
from tests.support.pipeline import pipeline
from tests.support.scenarios import charges, event_types, finished, make_case, read_run, trigger, turn_rows


@pytest.fixture
async def bus() -> AsyncIterator[InProcessBus]:
    bus = InProcessBus()
    yield bus
    await bus.stop()


async def test_a_scripted_run_is_played_scored_and_billed_once(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    company = await make_company(pool, balance_cents=1_000)
    case_id = await make_case(
        pool,
        company.id,
        success_criteria=[
            {"type": "must_say", "pattern": "refund"},
            {"type": "must_call_tool", "tool_name": "start_refund", "args_match": {"order": "A-1"}},
        ],
    )
    async with pipeline(settings, pool, bus):
        run_id = await trigger(pool, settings, company.id, case_id)
        await finished(pool, run_id)
    run = await read_run(pool, run_id)
    assert (run.status, run.termination_reason, run.score, run.pass_fail) == (
        "completed",
        "agent_ended",
        100.0,
        True,
    )
    rows = await turn_rows(pool, run_id)
    assert [(r["turn_number"], r["role"]) for r in rows] == [
        (1, "agent"),
        (2, "persona"),
        (3, "agent"),
        (4, "tool_result"),
        (5, "persona"),
        (6, "agent"),
    ]
    assert await event_types(pool, run_id) == [
        "queued",
        "started",
        *["turn"] * 6,
        "completed",
        "scored",
        "billed",
        "done",
    ]
    assert await charges(pool, run_id) == [-run.total_cost_cents]
