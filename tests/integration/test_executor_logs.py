"""What the executor logs: a line per run event, never one per model call (the HTTP client's
request lines only at debug), and every line of a conversation under its own run — never under
the Kafka record that started it, nor under another one. Also the saturation gauge."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prometheus_client import REGISTRY

from consumers.executor.worker import Executor
from consumers.llm.openai_compat import OpenAICompatibleProvider
from consumers.llm.providers import ChatMessage, CompletionRequest, Providers
from consumers.processing import RecordProcessor
from schemas.events import Event, EventType, Topic
from service.bus.interface import Message
from service.bus.memory import InProcessBus
from service.core.settings import ProviderConfig, Settings
from service.db.postgres import Pool
from tests.support.executor_runs import make_engine, new_run, run_request
from tests.support.factories import make_company
from tests.support.fake_llm import FakeLLM, Reply
from tests.support.logs import captured_logs
from tests.support.scenarios import make_case, read_run, trigger
from tests.support.waiting import eventually

CONVERSATION_LOGGERS = ("consumers.executor.", "consumers.llm.")


def with_fake(settings: Settings, llm: FakeLLM) -> Settings:
    provider = ProviderConfig(base_url=llm.base_url, timeout_s=5.0, max_retries=0)
    return settings.model_copy(update={"providers": {"fake": provider}})


async def one_model_call(llm: FakeLLM) -> None:
    llm.script(Reply(text="Hi."))
    providers = Providers({"fake": OpenAICompatibleProvider(ProviderConfig(base_url=llm.base_url), "sk")})
    try:
        await providers.complete(
            CompletionRequest(model="fake:gpt-test", messages=[ChatMessage(role="user", content="Hello?")])
        )
    finally:
        await providers.close()


async def test_a_model_call_logs_no_request_line_unless_debug_is_asked_for(llm: FakeLLM) -> None:
    with captured_logs("info") as logs:
        await one_model_call(llm)
    assert logs.containing("HTTP Request") == []
    with captured_logs("debug") as logs:
        await one_model_call(llm)
    assert len(logs.starting("HTTP Request: POST")) == 1


async def talking_run(pool: Pool, settings: Settings, name: str, max_turns: int) -> UUID:
    """A run whose model requests all carry `name` (in the agent's and the persona's prompts)."""
    company = await make_company(pool, balance_cents=10_000)
    agent = {"name": "Bot", "system_prompt": f"You serve {name}.", "model": "fake:agent", "tools": []}
    persona = {"name": "Caller", "identity_prompt": f"You are {name}.", "model": "fake:persona"}
    case_id = await make_case(pool, company.id, agent=agent, persona=persona, max_turns=max_turns)
    return await trigger(pool, settings, company.id, case_id)


def calls_by_name(llm: FakeLLM, names: dict[str, UUID]) -> dict[str, int]:
    counts = dict.fromkeys(map(str, names.values()), 0)
    for body in llm.requests:
        [name] = [name for name in names if name in json.dumps(body)]
        counts[str(names[name])] += 1
    return counts


@dataclass(frozen=True)
class ExecutorGroup:
    group: str = "executor"
    types: frozenset[str] = frozenset({EventType.RUN_REQUESTED})
    handler_attempts: int = 3
    retry_base_s: float = 0.1


def record_of(event: Event, offset: int) -> Message:
    """The run request as the consumer loop receives it from the topic."""
    headers = (("ce_type", event.type.encode()),)
    return Message(Topic.RUN_REQUESTS, 0, offset, None, event.model_dump_json().encode(), headers)


def from_a_conversation(line: dict[str, Any]) -> bool:
    return str(line.get("logger", "")).startswith(CONVERSATION_LOGGERS) and line["event"] != "run_claimed"


async def test_interleaved_conversations_log_under_their_own_run_and_no_record(
    pool: Pool, settings: Settings, llm: FakeLLM
) -> None:
    llm.responder = lambda body: Reply(text="Go on.", delay_s=0.03)
    settings = with_fake(settings, llm)
    names = {
        "ALPHA": await talking_run(pool, settings, "ALPHA", max_turns=5),
        "BRAVO": await talking_run(pool, settings, "BRAVO", max_turns=8),
    }
    events = [await run_request(pool, run_id) for run_id in names.values()]
    engine = make_engine(settings, pool)
    executor = Executor(pool, settings, engine, name="first")
    records = RecordProcessor(InProcessBus(), ExecutorGroup(), executor.handle, asyncio.Event())
    with captured_logs("debug") as logs:
        for offset, event in enumerate(events):  # each handled in its record's context
            assert await records.process(record_of(event, offset), lambda: True)
        await eventually(
            lambda: asyncio.sleep(0, executor.playing()), until=lambda p: not p, what="both ends"
        )
        await executor.close()
    await engine.providers.close()
    requests = {str(event.run_id): str(event.id) for event in events}
    assert {(await read_run(pool, run_id)).status for run_id in names.values()} == {"completed"}
    lines = [line for line in logs.all() if line.get("run_id") is not None]
    assert {line["run_id"] for line in lines} == set(requests)
    calls = [line["run_id"] for line in logs.starting("HTTP Request: POST")]
    # Each run's model calls are logged under that run (the two runs make different numbers)…
    assert {run_id: calls.count(run_id) for run_id in requests} == calls_by_name(llm, names)
    assert len(list(itertools.groupby(calls))) > 2  # …while the two conversations interleaved
    conversation = [line for line in lines if from_a_conversation(line)]
    assert {line["run_id"] for line in conversation if line["event"] == "run_ended"} == set(requests)
    assert [line for line in conversation if "event_id" in line or "event_type" in line] == []
    for line in lines:  # the handler's lines name the record it handles, and that record's run
        if "event_id" in line:
            assert line["event_id"] == requests[line["run_id"]], line


async def test_saturation_is_the_share_of_the_concurrency_in_use(pool: Pool, settings: Settings) -> None:
    slow = settings.model_copy(update={"scripted_latency_s": 5.0, "executor_concurrency": 4})
    engine = make_engine(slow, pool)
    executor = Executor(pool, slow, engine, name="first")
    for _ in range(2):
        await executor.handle(await run_request(pool, await new_run(pool, settings)))
    assert REGISTRY.get_sample_value("agent_eval_executor_saturation") == 0.5
    await executor.close()
    await engine.tools.close()
    assert REGISTRY.get_sample_value("agent_eval_executor_saturation") == 0.0
