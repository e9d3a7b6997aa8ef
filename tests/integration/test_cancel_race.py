"""A cancel raced against a conversation's last turn (in process, real PostgreSQL): whichever
commits first wins, and the run ends in exactly one terminal state — completed and scored (the
cancel came after the end and changed nothing) or cancelled, unscored and billed for its turns."""

from __future__ import annotations

import asyncio
import random
from uuid import UUID

from service.bus.memory import InProcessBus
from service.core.settings import Settings
from service.db import runs
from service.db.postgres import Pool
from service.runs.cancels import cancel_run
from tests.support.factories import make_company
from tests.support.pipeline import pipeline
from tests.support.scenarios import (
    assert_billed_for_turns,
    event_types,
    finished,
    make_case,
    scripted_agent,
    scripted_persona,
    trigger,
    turn_rows,
)
from tests.support.waiting import eventually

LATENCY_S = 0.08  # each scripted model call; the persona's goodbye is the last turn
RACES = 20
TERMINAL = ("completed", "failed", "cancelled")
# Turns: persona, agent, persona, agent, persona goodbye (end_conversation).
LAST_TURN = 5


def race_delays() -> list[float]:
    """When to cancel after the turn before the last one committed: both sure outcomes once
    (at once; long after the end), the rest spread around the last model call."""
    rng = random.Random(20_261_107)
    return [0.0, 1.0, *(rng.uniform(0, 2 * LATENCY_S) for _ in range(RACES - 2))]


async def race_once(
    pool: Pool, settings: Settings, company_id: UUID, case_id: UUID, delay_s: float
) -> tuple[UUID, bool]:
    """Trigger a run, wait for the turn before its last, cancel `delay_s` later; the run and
    whether the cancel found it still running (and flagged it)."""
    run_id = await trigger(pool, settings, company_id, case_id)
    await eventually(
        lambda: turn_rows(pool, run_id),
        until=lambda rows: len(rows) >= LAST_TURN - 1,
        interval_s=0.002,
        what="the turn before the last",
    )
    await asyncio.sleep(delay_s)  # the race itself: the last model call is in flight
    return run_id, await cancel_run(pool, settings, company_id=company_id, run_id=run_id, key=None)


async def assert_one_end(pool: Pool, run: runs.RunRow, flagged: bool) -> str:
    """Exactly one terminal state, consistent with what the cancel answered; returns it."""
    events = await event_types(pool, run.id)
    assert [e for e in events if e in TERMINAL] == [run.status], events
    assert (run.queue_status, events.count("billed"), events.count("done")) == ("done", 1, 1)
    rows = await turn_rows(pool, run.id)
    # Dense, and the goodbye is persisted either way: a cancel ends the run at that turn's commit.
    assert [r["turn_number"] for r in rows] == list(range(1, LAST_TURN + 1))
    await assert_billed_for_turns(pool, run)
    if flagged:
        assert (run.status, run.termination_reason) == ("cancelled", "cancelled")
        assert run.cancel_requested_at is not None
        assert "cancel_requested" in events
        assert "scored" not in events
        assert run.score is None
    else:  # the conversation had ended: the cancel answered the run unchanged
        assert (run.status, run.termination_reason) == ("completed", "persona_goodbye")
        assert run.cancel_requested_at is None
        assert "cancel_requested" not in events
        assert events.count("scored") == 1
    return run.status


async def test_a_cancel_raced_against_the_last_turn_ends_the_run_exactly_once(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    settings = settings.model_copy(update={"scripted_latency_s": LATENCY_S})
    company = await make_company(pool, balance_cents=10_000)
    agent = scripted_agent(greeting_message=None, rules=[{"when": ".", "say": "Happy to help."}], tools=[])
    persona = scripted_persona(["I have a question", "Thanks, that is all"])
    case_id = await make_case(pool, company.id, agent=agent, persona=persona)
    outcomes: list[str] = []
    async with pipeline(settings, pool, bus):
        for delay_s in race_delays():
            run_id, flagged = await race_once(pool, settings, company.id, case_id, delay_s)
            run = await finished(pool, run_id)
            outcomes.append(await assert_one_end(pool, run, flagged))
    assert outcomes[0] == "cancelled"  # cancelled at once, while the goodbye was still being said
    assert outcomes[1] == "completed"  # cancelled long after the end
