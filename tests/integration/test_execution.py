"""Runs executed end to end in this process (relay, executor, scorer, biller on the in-process
bus, real PostgreSQL): who speaks when, how conversations end, the prices on every turn, the
events, the score and the one charge."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from schemas.rates import DEFAULT_RATE_CARD, Price, RolePrices
from schemas.runs import RunConfig
from service.bus.memory import InProcessBus
from service.core.settings import Settings
from service.db.postgres import Pool, transaction
from service.domain.pricing import price_call
from tests.support.factories import make_company
from tests.support.pipeline import pipeline
from tests.support.scenarios import (
    charges,
    event_types,
    finished,
    make_case,
    scripted_agent,
    scripted_persona,
    trigger,
    turn_rows,
)
from tests.support.waiting import eventually


def roles_and_texts(rows: list[dict[str, Any]]) -> list[tuple[int, str, str | None]]:
    return [(r["turn_number"], r["role"], r["text"]) for r in rows]


def tool_names(row: dict[str, Any]) -> list[str]:
    return [call["name"] for call in row["tool_calls"] or []]


async def run_case(
    pool: Pool, settings: Settings, bus: InProcessBus, **case: Any
) -> tuple[Any, list[dict[str, Any]]]:
    """Create a company and a case, run it to done; the run and its turn rows."""
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(pool, company.id, **case)
    async with pipeline(settings, pool, bus):
        run_id = await trigger(pool, settings, company.id, case_id)
        run = await finished(pool, run_id)
    return run, await turn_rows(pool, run_id)


async def test_a_scripted_run_is_played_scored_and_billed_once(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    criteria = [
        {"type": "must_say", "pattern": "refund"},
        {"type": "must_call_tool", "tool_name": "start_refund", "args_match": {"order": "A-1"}},
    ]
    run, rows = await run_case(pool, settings, bus, success_criteria=criteria)
    assert (run.status, run.termination_reason, run.score, run.pass_fail) == (
        "completed",
        "agent_ended",
        100.0,
        True,
    )
    assert roles_and_texts(rows) == [
        (1, "agent", "Hello, how can I help?"),
        (2, "persona", "I want a refund"),
        (3, "agent", "I have started your refund."),
        (4, "tool_result", None),
        (5, "persona", "Thanks, bye"),
        (6, "agent", "Goodbye!"),
    ]
    assert tool_names(rows[2]) == ["start_refund"]
    assert tool_names(rows[5]) == ["end_call"]
    assert rows[3]["tool_result"]["mocked"] is True
    assert rows[3]["tool_result"]["tool_call_id"] == rows[2]["tool_calls"][0]["id"]
    assert rows[3]["tool_result"]["result"] == {"refund_id": "mock"}
    assert await event_types(pool, run.id) == [
        "queued",
        "started",
        *["turn"] * 6,
        "completed",
        "scored",
        "billed",
        "done",
    ]
    assert await charges(pool, run.id) == [-run.total_cost_cents]


async def test_every_model_turn_is_priced_when_persisted_and_the_run_sums_them(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    expensive = RolePrices(
        input_cents_per_million=Decimal(300_000),
        output_cents_per_million=Decimal(900_000),
        models={
            "scripted": Price(input_cents_per_million=Decimal(1000), output_cents_per_million=Decimal(5000))
        },
    )
    card = DEFAULT_RATE_CARD.model_copy(update={"version": "test-card", "agent": expensive})
    settings = settings.model_copy(update={"rate_card": card})
    run, rows = await run_case(pool, settings, bus)
    for row in rows:
        if row["role"] in ("agent", "persona") and row["model"] is not None:
            price = price_call(card, row["role"], row["model"], row["input_tokens"], row["output_tokens"])
            assert (row["cost_microcents"], row["rate_card_version"]) == (price.cost_microcents, "test-card")
        else:  # the literal greeting and tool results cost nothing
            assert (row["cost_microcents"], row["input_tokens"]) == (0, 0)
    assert rows[2]["model"] == "scripted"
    assert rows[2]["cost_microcents"] > 0
    exact = sum(r["cost_microcents"] for r in rows)
    assert run.total_cost_cents == math.ceil(exact / 1_000_000)
    assert run.agent_cost_cents + run.persona_cost_cents == run.total_cost_cents
    assert run.agent_input_tokens == sum(r["input_tokens"] for r in rows if r["role"] == "agent")
    assert run.persona_output_tokens == sum(r["output_tokens"] for r in rows if r["role"] == "persona")


async def test_the_persona_opens_without_a_greeting_and_its_goodbye_gets_no_reply(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    agent = scripted_agent(greeting_message=None, rules=[{"when": ".", "say": "Noted."}], tools=[])
    persona = scripted_persona(["One", "Two"])
    run, rows = await run_case(pool, settings, bus, agent=agent, persona=persona)
    assert (run.status, run.termination_reason) == ("completed", "persona_goodbye")
    assert roles_and_texts(rows) == [
        (1, "persona", "One"),
        (2, "agent", "Noted."),
        (3, "persona", "Two"),
        (4, "agent", "Noted."),
        (5, "persona", None),
    ]
    assert tool_names(rows[4]) == ["end_conversation"]


async def test_an_agent_that_speaks_first_without_a_greeting_lets_the_persona_open(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    agent = scripted_agent(greeting_message=None, agent_speaks_first=True)
    run, rows = await run_case(pool, settings, bus, agent=agent)
    assert rows[0]["role"] == "persona"
    assert run.termination_reason == "agent_ended"


async def test_max_turns_counts_persona_and_agent_messages_only(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    agent = scripted_agent(
        greeting_message=None,
        rules=[{"when": ".", "say": "Let me check.", "call_tool": {"name": "start_refund", "arguments": {}}}],
    )
    persona = scripted_persona([f"line {i}" for i in range(10)])
    run, rows = await run_case(pool, settings, bus, agent=agent, persona=persona, max_turns=4)
    assert (run.status, run.termination_reason) == ("completed", "max_turns")
    assert [r["role"] for r in rows] == ["persona", "agent", "tool_result", "persona", "agent", "tool_result"]
    assert [r["turn_number"] for r in rows] == [1, 2, 3, 4, 5, 6]


async def test_a_conversation_over_its_wall_clock_budget_ends_with_timeout_and_is_scored(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    settings = settings.model_copy(update={"scripted_latency_s": 0.3})
    agent = scripted_agent(
        greeting_message=None, max_call_duration_secs=1, rules=[{"when": ".", "say": "Yes."}]
    )
    persona = scripted_persona([f"line {i}" for i in range(30)])
    run, rows = await run_case(pool, settings, bus, agent=agent, persona=persona, max_turns=100)
    assert (run.status, run.termination_reason, run.queue_status) == ("completed", "timeout", "done")
    assert 2 <= len(rows) <= 5  # about 1 s of 0.3 s model calls
    assert run.evaluation is not None
    assert run.active_ms >= 1000


async def test_agent_overrides_of_the_case_and_the_run_are_merged_and_recorded(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(
        pool, company.id, agent_overrides={"system_prompt": "Case prompt.", "greeting_message": "Case hello"}
    )
    async with pipeline(settings, pool, bus):
        run_id = await trigger(
            pool,
            settings,
            company.id,
            case_id,
            body={"agent_overrides": {"greeting_message": "Run hello"}, "labels": {"ci": "yes"}},
        )
        run = await finished(pool, run_id)
    rows = await turn_rows(pool, run_id)
    assert rows[0]["text"] == "Run hello"
    config = RunConfig.model_validate(run.config)
    assert config.case.agent.system_prompt == "Case prompt."
    assert config.prompts.agent == "Case prompt."
    assert run.agent_overrides == {"greeting_message": "Run hello"}
    assert run.labels == {"ci": "yes"}


async def test_a_cancel_requested_mid_run_ends_it_cancelled_at_the_next_turn_billed_not_scored(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    settings = settings.model_copy(update={"scripted_latency_s": 0.2})
    company = await make_company(pool, balance_cents=10_000)
    persona = scripted_persona([f"line {i}" for i in range(20)])
    agent = scripted_agent(greeting_message=None, rules=[{"when": ".", "say": "Sure."}])
    case_id = await make_case(pool, company.id, agent=agent, persona=persona, max_turns=100)
    async with pipeline(settings, pool, bus):
        run_id = await trigger(pool, settings, company.id, case_id)
        await eventually(lambda: turn_rows(pool, run_id), until=lambda rows: len(rows) >= 2, what="two turns")
        async with transaction(pool) as conn:
            await conn.execute("UPDATE eval_runs SET cancel_requested_at = now() WHERE id = $1", run_id)
        run = await finished(pool, run_id)
    rows = await turn_rows(pool, run_id)
    assert (run.status, run.termination_reason) == ("cancelled", "cancelled")
    assert 2 <= len(rows) < 40
    types = await event_types(pool, run_id)
    assert "scored" not in types
    assert types[-3:] == ["cancelled", "billed", "done"]
    assert run.total_cost_cents == math.ceil(sum(r["cost_microcents"] for r in rows) / 1_000_000)
    assert await charges(pool, run_id) == ([-run.total_cost_cents] if run.total_cost_cents else [])
