"""Flow runs interrupted mid-flow: an executor killed with SIGKILL is resumed by another one on
the path the run would have taken anyway (the current node is persisted state), and a cancel
ends the run at the next turn boundary, billed for what it used."""

from __future__ import annotations

from uuid import UUID

import pytest

from service.bus.kafka import KafkaBus
from service.bus.memory import InProcessBus
from service.bus.topics import topic_specs
from service.core.settings import Settings
from service.db import runs
from service.db.postgres import Pool
from service.runs.cancels import cancel_run
from tests.support.executor_processes import Fleet, fleet, ready, role_env
from tests.support.factories import make_company
from tests.support.flow_runs import Row, comparable, flow_events, path_of, uninterrupted, verdicts
from tests.support.flows import flow_agent_body
from tests.support.long_runs import consuming
from tests.support.pipeline import pipeline
from tests.support.processes import Spawned
from tests.support.scenarios import (
    assert_billed_for_turns,
    event_types,
    finished,
    make_case,
    read_run,
    scripted_persona,
    trigger,
    turn_rows,
)
from tests.support.waiting import eventually

# Four lines that stay in triage (each: the caller, a `stay` decision, the agent), then a booking.
LINES = ["hello", "hmm", "well then", "let me think", "I need an appointment on Friday", "yes"]
PATH = ["start", "triage", "lookup", "offer", "book", "bye"]
CALLER_TURNS = [4, 7, 10, 13, 16, 23]  # each evaluated exactly once
LOOKUP_ENTERED = 18
REACHES = [
    {"type": "must_reach_node", "node_id": "book"},
    {"type": "must_reach_node", "node_id": "human"},
]


async def new_flow_case(pool: Pool) -> tuple[UUID, UUID]:
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(
        pool,
        company.id,
        agent=flow_agent_body(),
        persona=scripted_persona(LINES),
        max_turns=50,
        success_criteria=REACHES,
    )
    return company.id, case_id


# --- kill -9 of the executor playing the flow ---------------------------------------------------


@pytest.mark.kafka
async def test_a_flow_run_whose_executor_is_killed_resumes_on_the_path_it_would_have_taken(
    pool: Pool, settings: Settings, kafka: KafkaBus, kafka_bootstrap: str, database_url: str
) -> None:
    await kafka.create_topics(topic_specs(settings.topic_prefix, 1, 1))
    company_id, case_id = await new_flow_case(pool)
    env = role_env(database_url, kafka_bootstrap, settings.topic_prefix, AGENT_EVAL_SCRIPTED_LATENCY_S="0.2")
    with fleet(env, executors=2, roles=()) as running:  # scorer and biller run in this process
        try:
            async with consuming(settings, pool, kafka, "scorer", "biller"):
                await ready(running)
                run_id = await trigger(pool, settings, company_id, case_id)
                survivor, at_kill = await kill_mid_flow(pool, running, run_id)
                run = await finished(pool, run_id, timeout_s=40)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{running.tail()}") from exc
    assert run.claimed_by is not None
    assert running.executor_named(run.claimed_by) is survivor
    assert (run.status, run.termination_reason, run.error_code) == ("completed", "agent_ended", None)
    assert run.attempt >= 2
    rows = await turn_rows(pool, run_id)
    assert_resumed_flow(rows, at_kill)
    assert_flow_verdicts(run, rows)
    events = await event_types(pool, run_id)
    assert [events.count(e) for e in ("completed", "scored", "billed", "done")] == [1, 1, 1, 1]
    assert events.count("started") == run.attempt
    assert events.count("turn") == len(rows)
    assert run.total_cost_cents > 0
    await assert_billed_for_turns(pool, run)


async def kill_mid_flow(pool: Pool, running: Fleet, run_id: UUID) -> tuple[Spawned, list[Row]]:
    """SIGKILL the executor playing the run once two evaluation decisions are persisted, while the
    flow is still in triage; the other executor and the rows persisted before the kill."""
    await eventually(
        lambda: turn_rows(pool, run_id),
        until=lambda rows: len(flow_events(rows, "flow_eval_decision")) >= 2,
        interval_s=0.005,
        what="two evaluation decisions",
    )
    claimed_by = (await read_run(pool, run_id)).claimed_by
    assert claimed_by is not None
    victim = running.executor_named(claimed_by)
    assert victim is not None, f"no executor process is {claimed_by}"
    victim.kill()
    at_kill = await turn_rows(pool, run_id)
    assert path_of(at_kill) == ["start", "triage"]  # killed in the middle of the flow
    [survivor] = [child for child in running.executors if child is not victim]
    return survivor, at_kill


def assert_resumed_flow(rows: list[Row], at_kill: list[Row]) -> None:
    """Row for row the transcript of a run nobody killed: dense, each node entered once, each
    caller message evaluated once; what was written before the kill kept as it was."""
    assert comparable(rows) == uninterrupted(LINES)
    assert [r["turn_number"] for r in rows] == list(range(1, len(rows) + 1))
    assert path_of(rows) == PATH
    assert [e["turn_id"] for e in flow_events(rows, "flow_eval_decision")] == CALLER_TURNS
    assert [r["turn_number"] for r in rows if r["role"] == "persona"] == CALLER_TURNS
    assert rows[LOOKUP_ENTERED - 1]["flow_event"]["step_id"] == "lookup"
    assert comparable(rows[: len(at_kill)]) == comparable(at_kill)
    assert {r["attempt"] for r in at_kill} == {1}
    assert any(r["attempt"] >= 2 for r in rows[len(at_kill) :])
    assert [r["attempt"] for r in rows] == sorted(r["attempt"] for r in rows)


def assert_flow_verdicts(run: runs.RunRow, rows: list[Row]) -> None:
    [book] = [
        r["turn_number"]
        for r in rows
        if (r["flow_event"] or {}).get("step_id") == "book" and r["flow_event"]["type"] == "flow_node_entered"
    ]
    assert [(v["assertion"]["node_id"], v["passed"], v["reason"]) for v in verdicts(run)] == [
        ("book", True, f"reached at turn {book}"),
        ("human", False, "node human was never entered"),
    ]
    assert (run.pass_fail, run.score) == (False, 50.0)


# --- cancel while the flow is running -----------------------------------------------------------


async def test_a_flow_run_cancelled_mid_flow_ends_at_the_next_turn_boundary_billed_for_its_turns(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    settings = settings.model_copy(update={"scripted_latency_s": 0.1})
    company_id, case_id = await new_flow_case(pool)
    async with pipeline(settings, pool, bus):
        run_id = await trigger(pool, settings, company_id, case_id)
        await eventually(
            lambda: turn_rows(pool, run_id),
            until=lambda rows: len(flow_events(rows, "flow_eval_decision")) >= 2,
            interval_s=0.005,
            what="two evaluation decisions",
        )
        assert await cancel_run(pool, settings, company_id=company_id, run_id=run_id, key=None) is True
        run = await finished(pool, run_id)
    assert (run.status, run.termination_reason, run.error_code) == ("cancelled", "cancelled", None)
    assert (run.score, run.pass_fail) == (None, None)
    rows = await turn_rows(pool, run_id)
    assert comparable(rows) == uninterrupted(LINES)[: len(rows)]  # the flow as far as it went
    assert path_of(rows) == ["start", "triage"]
    events = await event_types(pool, run_id)
    after_cancel = events[events.index("cancel_requested") + 1 :]
    # Rows committed after the cancel: the one round in flight (in triage a round is one row: a
    # caller line, a decision or the agent's answer), then the end at that turn boundary.
    assert after_cancel == ["turn", "cancelled", "billed", "done"]
    await assert_billed_for_turns(pool, run)
    assert run.total_cost_cents > 0
