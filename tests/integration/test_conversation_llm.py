"""Conversations with real HTTP model calls (a local server speaking OpenAI chat completions):
what each side is sent, tool calling round trips, retries, and provider failures ending runs."""

from __future__ import annotations

import json
from typing import Any

from service.bus.memory import InProcessBus
from service.core.settings import ProviderConfig, Settings
from service.db.postgres import Pool
from service.domain.prompts import PERSONA_OPENS
from tests.support.factories import make_company
from tests.support.fake_llm import FakeLLM, Reply
from tests.support.pipeline import pipeline
from tests.support.scenarios import charges, event_types, finished, make_case, trigger, turn_rows

LOOKUP = {
    "name": "lookup_order",
    "description": "Find an order",
    "parameters": {"type": "object", "properties": {"order": {"type": "string"}}},
    "output_schema": {"type": "object", "properties": {"status": {"enum": ["shipped"]}}},
}
AGENT = {
    "name": "Shop bot",
    "system_prompt": "You are the shop's assistant.",
    "model": "fake:agent",
    "temperature": 0.2,
    "agent_speaks_first": False,
    "tools": [LOOKUP],
}
PERSONA = {"name": "Buyer", "identity_prompt": "You are waiting for order 42.", "model": "fake:persona"}
FAST_RETRY = {"retry-after-ms": "10"}


def with_fake(settings: Settings, llm: FakeLLM, *, timeout_s: float = 5.0, max_retries: int = 1) -> Settings:
    provider = ProviderConfig(base_url=llm.base_url, timeout_s=timeout_s, max_retries=max_retries)
    return settings.model_copy(update={"providers": {"fake": provider}})


def by_side(persona: list[Reply], agent: list[Reply]) -> Any:
    """Answer persona and agent requests from their own queues (told apart by model name)."""

    def respond(body: dict[str, Any]) -> Reply:
        queue = persona if body["model"] == "persona" else agent
        return queue.pop(0) if queue else Reply(status=500, raw_body='{"error": {"message": "script over"}}')

    return respond


async def play(
    pool: Pool, settings: Settings, bus: InProcessBus, **case: Any
) -> tuple[Any, list[dict[str, Any]]]:
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(pool, company.id, agent=AGENT, persona=PERSONA, **case)
    async with pipeline(settings, pool, bus):
        run_id = await trigger(pool, settings, company.id, case_id)
        run = await finished(pool, run_id)
    return run, await turn_rows(pool, run_id)


async def test_a_tool_round_trip_is_sent_to_each_side_as_it_should_see_it(
    pool: Pool, settings: Settings, bus: InProcessBus, llm: FakeLLM
) -> None:
    llm.responder = by_side(
        persona=[
            Reply(text="Where is order 42?", input_tokens=30, output_tokens=6),
            Reply(text="Great, thanks!", tool_calls=(("end_conversation", {}),)),
        ],
        agent=[
            Reply(text="Let me look.", tool_calls=(("lookup_order", {"order": "42"}),), input_tokens=40),
            Reply(text="It has shipped."),
        ],
    )
    run, rows = await play(pool, with_fake(settings, llm), bus)
    assert (run.status, run.termination_reason) == ("completed", "persona_goodbye")
    assert [(r["role"], r["text"]) for r in rows] == [
        ("persona", "Where is order 42?"),
        ("agent", "Let me look."),
        ("tool_result", None),
        ("agent", "It has shipped."),
        ("persona", "Great, thanks!"),
    ]
    assert (rows[0]["model"], rows[0]["input_tokens"], rows[0]["output_tokens"]) == ("fake:persona", 30, 6)
    assert (rows[1]["model"], rows[1]["input_tokens"]) == ("fake:agent", 40)
    opening, first_agent, second_agent, closing = llm.requests
    # The persona opens: it is told it speaks first, and it can hang up.
    assert opening["messages"][-1] == {"role": "user", "content": PERSONA_OPENS}
    assert [t["function"]["name"] for t in opening["tools"]] == ["end_conversation"]
    # The agent gets its own prompt, its temperature, its tools and the system end_call tool.
    assert first_agent["messages"][0] == {"role": "system", "content": "You are the shop's assistant."}
    assert first_agent["temperature"] == 0.2
    assert [t["function"]["name"] for t in first_agent["tools"]] == ["lookup_order", "end_call"]
    # After the tool call, the agent sees its call and the (mocked) result, linked by id.
    call = second_agent["messages"][-2]["tool_calls"][0]
    result = second_agent["messages"][-1]
    assert result["role"] == "tool"
    assert result["tool_call_id"] == call["id"]
    assert json.loads(result["content"]) == {"status": "shipped"}
    # The persona never sees tool traffic: only the agent's words, as the user.
    assert [m["role"] for m in closing["messages"]] == ["system", "assistant", "user", "user"]
    assert closing["messages"][2:] == [
        {"role": "user", "content": "Let me look."},
        {"role": "user", "content": "It has shipped."},
    ]


async def test_rate_limits_and_server_errors_are_retried_before_anything_fails(
    pool: Pool, settings: Settings, bus: InProcessBus, llm: FakeLLM
) -> None:
    llm.responder = by_side(
        persona=[
            Reply(status=429, headers=FAST_RETRY),
            Reply(text="Hi"),
            Reply(text="Bye", tool_calls=(("end_conversation", {}),)),
        ],
        agent=[Reply(status=503, headers=FAST_RETRY), Reply(text="Hello!")],
    )
    run, rows = await play(pool, with_fake(settings, llm, max_retries=2), bus)
    assert (run.status, run.termination_reason) == ("completed", "persona_goodbye")
    assert [r["text"] for r in rows] == ["Hi", "Hello!", "Bye"]


async def test_a_provider_that_stays_down_fails_the_run_with_a_code_billed_for_calls_made(
    pool: Pool, settings: Settings, bus: InProcessBus, llm: FakeLLM
) -> None:
    llm.responder = by_side(persona=[Reply(text="Hi", input_tokens=500_000, output_tokens=1000)], agent=[])
    run, rows = await play(pool, with_fake(settings, llm, max_retries=1), bus)
    assert (run.status, run.termination_reason, run.error_code) == ("failed", "error", "PROVIDER_UNAVAILABLE")
    assert run.error is not None
    assert "HTTP 500" in run.error
    assert [r["role"] for r in rows] == ["persona"]
    assert run.total_cost_cents == -(-rows[0]["cost_microcents"] // 1_000_000) > 0
    assert await charges(pool, run.id) == [-run.total_cost_cents]
    assert "scored" not in await event_types(pool, run.id)


async def test_a_reply_slower_than_the_provider_timeout_fails_the_run_as_a_timeout_code(
    pool: Pool, settings: Settings, bus: InProcessBus, llm: FakeLLM
) -> None:
    llm.responder = by_side(persona=[Reply(text="Hi", delay_s=2.0)], agent=[])
    run, rows = await play(pool, with_fake(settings, llm, timeout_s=0.3, max_retries=0), bus)
    assert (run.status, run.error_code) == ("failed", "PROVIDER_TIMEOUT")
    assert rows == []


async def test_an_agent_with_nothing_to_add_after_tools_still_pays_for_the_call(
    pool: Pool, settings: Settings, bus: InProcessBus, llm: FakeLLM
) -> None:
    llm.responder = by_side(
        persona=[Reply(text="Order 42?"), Reply(text="Ok", tool_calls=(("end_conversation", {}),))],
        agent=[
            Reply(text=None, tool_calls=(("lookup_order", {"order": "42"}),)),
            Reply(text=None, input_tokens=50, output_tokens=1),
        ],
    )
    run, rows = await play(pool, with_fake(settings, llm), bus)
    assert [(r["role"], r["text"]) for r in rows] == [
        ("persona", "Order 42?"),
        ("agent", None),
        ("tool_result", None),
        ("agent", None),
        ("persona", "Ok"),
    ]
    assert rows[3]["input_tokens"] == 50
    assert rows[3]["cost_microcents"] > 0
    assert run.termination_reason == "persona_goodbye"


async def test_the_agent_hanging_up_ends_the_run_agent_ended(
    pool: Pool, settings: Settings, bus: InProcessBus, llm: FakeLLM
) -> None:
    llm.responder = by_side(
        persona=[Reply(text="Hello?")],
        agent=[Reply(text="Sorry, wrong number.", tool_calls=(("end_call", {}),))],
    )
    run, rows = await play(pool, with_fake(settings, llm), bus)
    assert (run.termination_reason, [r["role"] for r in rows]) == ("agent_ended", ["persona", "agent"])
