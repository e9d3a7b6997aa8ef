"""A flow agent whose model is real (a local server speaking OpenAI chat completions): the
evaluation step and `ai_extract` asked with a JSON-schema response format, an answer naming no
option keeping the flow where it is, a non-literal greeting and farewell said in the model's
words, every call priced as the agent's, and a model failure during an evaluation failing the run
like any model failure."""

from __future__ import annotations

import json
from typing import Any

from pydantic import JsonValue

from service.bus.memory import InProcessBus
from service.core.settings import ModelSettings, ProviderConfig, Settings
from service.db.postgres import Pool
from service.domain.pricing import bill
from tests.support.fake_llm import FakeLLM, Reply
from tests.support.flow_runs import Row, flow_events, path_of, play_flow, said
from tests.support.flows import flow_agent_body, with_node
from tests.support.scenarios import assert_billed_for_turns, event_types

GREET = "Greet the caller on behalf of Acme"
FAREWELL = "Say goodbye and confirm the visit"
LINES = ["I need an appointment on Friday", "maybe", "yes please"]
EVALUATION_TOKENS = (100_000, 9)  # large enough that the evaluations alone cost whole cents


def with_fake(settings: Settings, llm: FakeLLM, **models: ModelSettings) -> Settings:
    provider = ProviderConfig(base_url=llm.base_url, timeout_s=5.0, max_retries=0, models=models)
    return settings.model_copy(update={"providers": {"fake": provider}})


def model_flow_agent() -> dict[str, Any]:
    nodes = with_node("start", greeting=GREET, is_literal=False)
    return flow_agent_body(with_node("bye", nodes, farewell=FAREWELL, is_literal=False), model="fake:agent")


def choice(option_id: str | None, decision: str = "transition") -> Reply:
    answer = {"decision": decision, "option_id": option_id, "reasoning": f"chose {option_id}"}
    return Reply(
        text=json.dumps(answer), input_tokens=EVALUATION_TOKENS[0], output_tokens=EVALUATION_TOKENS[1]
    )


REPLIES = [
    Reply(text="Welcome to Acme, how can I help?"),  # the greeting, in the model's words
    choice("to_booking"),  # triage: the caller wants a visit
    Reply(text='{"day": "Friday"}', input_tokens=40, output_tokens=5),  # lookup's ai_extract
    Reply(text="Friday at 10 is free. Shall I book it?"),  # offer, after the tool
    choice("to_nowhere"),  # offer, "maybe": an option that does not exist
    Reply(text="Shall I book Friday at 10 for you?"),
    choice("accept"),  # offer, "yes please"
    Reply(text="Goodbye, see you on Friday!"),  # the farewell, in the model's words
]


def schema_sent(request: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema a request asked the answer to match (strict json_schema response format)."""
    response_format = request["response_format"]
    assert response_format["type"] == "json_schema"
    assert (response_format["json_schema"]["name"], response_format["json_schema"]["strict"]) == (
        "answer",
        True,
    )
    schema: dict[str, Any] = response_format["json_schema"]["schema"]
    return schema


async def test_a_real_model_chooses_transitions_extracts_arguments_and_words_lines(
    pool: Pool, settings: Settings, bus: InProcessBus, llm: FakeLLM
) -> None:
    llm.script(*REPLIES)
    run, rows = await play_flow(pool, with_fake(settings, llm), bus, LINES, model_flow_agent())
    assert (run.status, run.termination_reason) == ("completed", "agent_ended")
    assert path_of(rows) == ["start", "triage", "lookup", "offer", "book", "bye"]
    assert said(rows) == [
        ("agent", "Welcome to Acme, how can I help?"),
        ("persona", "I need an appointment on Friday"),
        ("agent", "Let me check the calendar."),
        ("agent", "Friday at 10 is free. Shall I book it?"),
        ("persona", "maybe"),
        ("agent", "Shall I book Friday at 10 for you?"),
        ("persona", "yes please"),
        ("agent", None),  # the calendar integration's call
        ("agent", "Goodbye, see you on Friday!"),
    ]
    decisions = flow_events(rows, "flow_eval_decision")
    assert [(d["step_id"], d["decision"], d["transition_id"], d["valid"]) for d in decisions] == [
        ("triage", "transition", "to_booking", True),
        ("offer", "stay", None, False),  # the flow stayed in offer
        ("offer", "transition", "accept", True),
    ]
    assert decisions[0]["reasoning"] == "chose to_booking"
    [lookup, _] = flow_events(rows, "flow_tool_result")
    assert (lookup["args"], lookup["arg_sources"]) == (
        {"day": "Friday", "site": "Main St"},
        {"day": "ai_extract", "site": "literal"},
    )
    assert_priced_as_the_agents(rows)
    assert_usage_includes_the_flows_calls(run.agent_input_tokens, run.agent_cost_cents, rows)
    await assert_billed_for_turns(pool, run)
    assert_requests(llm.requests)


def assert_priced_as_the_agents(rows: list[Row]) -> None:
    """Each evaluation and the extraction: the agent's model, its tokens, a price."""
    made = [r for r in rows if r["role"] == "flow_event" and r["model"] is not None]
    assert [(r["flow_event"]["type"], r["model"], r["input_tokens"], r["output_tokens"]) for r in made] == [
        ("flow_eval_decision", "fake:agent", *EVALUATION_TOKENS),
        ("flow_tool_result", "fake:agent", 40, 5),
        ("flow_eval_decision", "fake:agent", *EVALUATION_TOKENS),
        ("flow_eval_decision", "fake:agent", *EVALUATION_TOKENS),
    ]
    assert all(r["cost_microcents"] > 0 and r["rate_card_version"] is not None for r in made)
    entered = flow_events(rows, "flow_node_entered")
    assert all(r["cost_microcents"] == 0 for r in rows if r["flow_event"] in entered)


def assert_usage_includes_the_flows_calls(input_tokens: int, agent_cents: int, rows: list[Row]) -> None:
    agent_side = [r for r in rows if r["role"] in ("agent", "flow_event")]
    assert input_tokens == sum(r.input_tokens for r in REPLIES)  # every call the server answered
    assert input_tokens == sum(r["input_tokens"] for r in agent_side)
    agent_micro = sum(r["cost_microcents"] for r in agent_side)
    persona_micro = sum(r["cost_microcents"] for r in rows if r["role"] == "persona")
    assert agent_cents == bill(agent_micro, persona_micro, 0).agent_cost_cents
    flow_micro = sum(r["cost_microcents"] for r in rows if r["role"] == "flow_event")
    assert flow_micro >= 1_000_000  # the evaluations are a whole cent or more of that


def assert_requests(requests: list[dict[str, Any]]) -> None:
    greeting, triage, extraction, _, offer, _, _, farewell = requests
    assert greeting["messages"][0]["content"].endswith(f"nothing else: {GREET}")
    assert farewell["messages"][0]["content"].endswith(f"nothing else: {FAREWELL}")
    assert all("response_format" not in r for r in (greeting, requests[3], requests[5], farewell))
    options: JsonValue = schema_sent(triage)["properties"]["option_id"]["enum"]
    assert options == ["to_booking", "to_billing", "global:human", None]
    assert schema_sent(offer)["properties"]["option_id"]["enum"] == ["accept", "global:human", None]
    assert schema_sent(triage)["properties"]["decision"]["enum"] == ["stay", "transition"]
    assert (triage["temperature"], "tools" in triage) == (0, False)
    assert "Booking a visit" in triage["messages"][0]["content"]
    assert triage["messages"][-1]["content"].endswith("Caller: I need an appointment on Friday")
    assert schema_sent(extraction)["required"] == ["day"]
    assert schema_sent(extraction)["properties"]["day"]["description"] == "the day the caller wants"


async def test_a_model_failure_during_an_evaluation_fails_the_run_with_the_providers_code(
    pool: Pool, settings: Settings, bus: InProcessBus, llm: FakeLLM
) -> None:
    llm.script(Reply(status=500))  # the literal greeting needs no model: the evaluation is the first call
    agent = flow_agent_body(model="fake:agent")
    run, rows = await play_flow(pool, with_fake(settings, llm), bus, LINES, agent)
    assert (run.status, run.termination_reason, run.error_code) == ("failed", "error", "PROVIDER_UNAVAILABLE")
    assert run.error is not None
    assert "HTTP 500" in run.error
    assert [(r["role"], r["text"]) for r in rows] == [
        ("flow_event", None),
        ("agent", "Acme, how can I help?"),
        ("flow_event", None),
        ("persona", "I need an appointment on Friday"),
    ]
    assert flow_events(rows, "flow_eval_decision") == []
    assert "response_format" in llm.requests[0]
    assert (run.score, run.pass_fail) == (None, None)
    assert "scored" not in await event_types(pool, run.id)
    await assert_billed_for_turns(pool, run)


def fenced(answer: dict[str, Any]) -> Reply:
    """An answer as models asked for JSON without a response format often give it."""
    return Reply(text=f"```json\n{json.dumps(answer)}\n```")


async def test_a_model_without_structured_output_is_told_the_answer_format_and_may_fence_it(
    pool: Pool, settings: Settings, bus: InProcessBus, llm: FakeLLM
) -> None:
    llm.script(
        fenced({"decision": "transition", "option_id": "to_booking", "reasoning": "a visit"}),
        fenced({"day": "Friday"}),
        Reply(text="Friday at 10 is free."),
    )
    plain = with_fake(settings, llm, agent=ModelSettings(structured_output="none"))
    agent = flow_agent_body(model="fake:agent")
    _, rows = await play_flow(pool, plain, bus, LINES[:1], agent)
    assert path_of(rows)[:4] == ["start", "triage", "lookup", "offer"]
    assert flow_events(rows, "flow_tool_result")[0]["args"]["day"] == "Friday"
    evaluation, extraction = llm.requests[:2]
    assert "response_format" not in evaluation
    asked = evaluation["messages"][0]["content"]
    assert all(word in asked for word in ("JSON", '"decision"', '"option_id"', '"reasoning"'))
    assert all(word in extraction["messages"][0]["content"] for word in ("JSON", '"day"'))
