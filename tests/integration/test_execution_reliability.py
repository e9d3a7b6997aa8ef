"""Execution under failure, on real Kafka and real PostgreSQL: an executor killed mid-run is
resumed by another one (dense turns, one charge), a run cancelled before its claim never starts,
and a model provider that is down fails the run `PROVIDER_UNAVAILABLE`, billed for what it used."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import UUID

import pytest

from consumers.registry import ROLES
from consumers.relay import Relay
from schemas.events import Topic
from service.bus.kafka import KafkaBus
from service.bus.topics import topic_name, topic_specs
from service.core.settings import ProviderConfig, Settings
from service.db import runs
from service.db.postgres import Pool
from service.runs.cancels import cancel_run
from tests.support.executor_processes import Fleet, fleet, ready, role_env
from tests.support.factories import make_company
from tests.support.fake_llm import FakeLLM, Reply, fake_llm
from tests.support.long_runs import ANSWERS, LINES, RULES, SCRIPT, all_sent, consuming
from tests.support.pipeline import pipeline
from tests.support.processes import Spawned
from tests.support.scenarios import (
    assert_billed_for_turns,
    charges,
    event_types,
    finished,
    make_case,
    read_run,
    scripted_agent,
    scripted_persona,
    trigger,
    turn_rows,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka


# --- (a) an executor killed in the middle of a conversation -------------------------------------


async def test_a_run_whose_executor_is_killed_resumes_elsewhere_with_dense_turns_and_one_charge(
    pool: Pool, settings: Settings, kafka: KafkaBus, kafka_bootstrap: str, database_url: str
) -> None:
    await kafka.create_topics(topic_specs(settings.topic_prefix, 1, 1))
    company = await make_company(pool, balance_cents=1_000)
    agent = scripted_agent(greeting_message=None, rules=RULES, tools=[])
    case_id = await make_case(pool, company.id, agent=agent, persona=scripted_persona(SCRIPT), max_turns=50)
    env = role_env(database_url, kafka_bootstrap, settings.topic_prefix, AGENT_EVAL_SCRIPTED_LATENCY_S="0.2")
    with fleet(env, executors=2, roles=()) as running:  # scorer and biller run in this process
        try:
            async with consuming(settings, pool, kafka, "scorer", "biller"):
                await ready(running)
                run_id = await trigger(pool, settings, company.id, case_id)
                survivor = await kill_the_executor_playing(pool, running, run_id)
                run = await finished(pool, run_id, timeout_s=40)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{running.tail()}") from exc
    assert run.claimed_by is not None
    assert running.executor_named(run.claimed_by) is survivor
    assert (run.status, run.termination_reason, run.error_code) == ("completed", "persona_goodbye", None)
    assert run.attempt >= 2
    await assert_resumed_transcript(pool, run)
    events = await event_types(pool, run_id)
    assert [events.count(e) for e in ("completed", "scored", "billed", "done")] == [1, 1, 1, 1]
    assert events.count("started") == run.attempt
    assert events.count("turn") == 2 * LINES + 1
    assert run.total_cost_cents > 0
    await assert_billed_for_turns(pool, run)


async def kill_the_executor_playing(pool: Pool, running: Fleet, run_id: UUID) -> Spawned:
    """SIGKILL the executor process holding the run once a few turns exist (no hand-back: its
    lease has to expire); returns the other executor."""
    await eventually(lambda: turn_rows(pool, run_id), until=lambda rows: len(rows) >= 4, what="a few turns")
    claimed_by = (await read_run(pool, run_id)).claimed_by
    assert claimed_by is not None
    victim = running.executor_named(claimed_by)
    assert victim is not None, f"no executor process is {claimed_by}"
    victim.kill()
    assert len(await turn_rows(pool, run_id)) < 2 * LINES + 1  # killed in the middle
    [survivor] = [child for child in running.executors if child is not victim]
    return survivor


async def assert_resumed_transcript(pool: Pool, run: runs.RunRow) -> None:
    """Each message said once, in order, numbered 1..N; part written before the kill, part after."""
    rows = await turn_rows(pool, run.id)
    assert [r["turn_number"] for r in rows] == list(range(1, 2 * LINES + 2))
    said = [(r["role"], r["text"]) for r in rows]
    expected = [turn for pair in zip(SCRIPT, ANSWERS, strict=True) for turn in pair]
    roles = ["persona", "agent"] * LINES
    assert said == [*zip(roles, expected, strict=True), ("persona", None)]  # then the goodbye
    attempts = {int(r["attempt"]) for r in rows}
    assert 1 in attempts
    assert any(a >= 2 for a in attempts)
    assert [r["attempt"] for r in rows] == sorted(r["attempt"] for r in rows)


# --- (c) a cancel before any executor claimed the run ------------------------------------------


@contextlib.asynccontextmanager
async def relaying(settings: Settings, kafka: KafkaBus) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(Relay(settings, kafka).run(stop), name="relay")
    try:
        yield
    finally:
        stop.set()
        await task


async def caught_up(kafka: KafkaBus, settings: Settings, role: str, topic: Topic) -> None:
    """Wait until `role` has handled and committed every record of `topic` there is now."""
    name = topic_name(settings.topic_prefix, topic)
    ends = sum((await kafka.end_offsets(name)).values())
    assert ends >= 1
    group = ROLES[role].group(settings.topic_prefix)

    async def handled() -> int:
        return sum((await kafka.committed(group, name)).values())

    await eventually(handled, until=lambda n: n >= ends, what=f"the {role} to handle {name}")


async def test_a_run_cancelled_before_its_claim_never_starts(
    pool: Pool, settings: Settings, kafka: KafkaBus
) -> None:
    await kafka.create_topics(topic_specs(settings.topic_prefix, 1, 1))
    company = await make_company(pool, balance_cents=1_000)
    case_id = await make_case(pool, company.id)
    async with relaying(settings, kafka):  # no executor yet
        run_id = await trigger(pool, settings, company.id, case_id)
        await eventually(lambda: all_sent(pool, run_id), what="the run request on Kafka")
        flagged = await cancel_run(pool, settings, company_id=company.id, run_id=run_id, key=None)
        assert flagged is False  # cancelled at once, not flagged for an executor
        cancelled = await read_run(pool, run_id)
        assert (cancelled.status, cancelled.queue_status, cancelled.termination_reason) == (
            "cancelled",
            "done",
            "cancelled",
        )
        assert (cancelled.total_cost_cents, await charges(pool, run_id)) == (0, [])
        assert await event_types(pool, run_id) == ["queued", "cancelled", "done"]
        await eventually(lambda: all_sent(pool, run_id), what="the cancel's events on Kafka")

        async with consuming(settings, pool, kafka, "executor", "scorer", "biller"):
            await caught_up(kafka, settings, "executor", Topic.RUN_REQUESTS)  # the request was delivered
            await caught_up(kafka, settings, "biller", Topic.RUN_EVENTS)  # and so was `run.cancelled`
    assert await read_run(pool, run_id) == cancelled  # the conversation never started
    assert (cancelled.attempt, cancelled.claimed_by, cancelled.started_at) == (0, None, None)
    assert await turn_rows(pool, run_id) == []
    assert await event_types(pool, run_id) == ["queued", "cancelled", "done"]
    assert await charges(pool, run_id) == []


# --- (d) the agent's model provider is down -----------------------------------------------------


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with fake_llm() as server:
        server.responder = lambda _: Reply(status=500)
        yield server


async def test_a_provider_that_is_down_fails_the_run_unscored_and_billed_for_the_calls_made(
    pool: Pool, settings: Settings, kafka: KafkaBus, llm: FakeLLM
) -> None:
    settings = settings.model_copy(
        update={"providers": {"fake": ProviderConfig(base_url=llm.base_url, max_retries=1)}}
    )
    company = await make_company(pool, balance_cents=1_000)
    agent = {"name": "Remote bot", "system_prompt": "You help customers.", "model": "fake:agent"}
    case_id = await make_case(pool, company.id, agent=agent, persona=scripted_persona(["Hi there", "Bye"]))
    async with pipeline(settings, pool, kafka):
        run_id = await trigger(pool, settings, company.id, case_id)
        run = await finished(pool, run_id)
    assert (run.status, run.termination_reason, run.error_code) == ("failed", "error", "PROVIDER_UNAVAILABLE")
    assert run.error is not None
    assert "500" in run.error
    assert (run.score, run.pass_fail) == (None, None)
    rows = await turn_rows(pool, run_id)
    assert [(r["turn_number"], r["role"], r["text"]) for r in rows] == [(1, "persona", "Hi there")]
    assert rows[0]["cost_microcents"] > 0
    assert len(llm.requests) == 2  # the agent's call and its one retry
    assert all(r["model"] == "agent" for r in llm.requests)
    assert await event_types(pool, run_id) == ["queued", "started", "turn", "failed", "billed", "done"]
    await assert_billed_for_turns(pool, run)
