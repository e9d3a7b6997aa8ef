"""Flow agents run end to end in this process (relay, executor, scorer, biller on the in-process
bus, real PostgreSQL) with the scripted model: the flow events persisted as turns, priced, scored
by must_reach_node, billed once."""

from __future__ import annotations

import math
from typing import Any

from service.bus.memory import InProcessBus
from service.core.settings import Settings
from service.db.postgres import Pool
from tests.support.factories import make_company
from tests.support.flows import flow_agent_body
from tests.support.pipeline import pipeline
from tests.support.scenarios import (
    charges,
    event_types,
    finished,
    make_case,
    scripted_persona,
    trigger,
    turn_rows,
)

REACHES = [
    {"type": "must_reach_node", "node_id": "book"},
    {"type": "must_reach_node", "node_id": "human"},
    {"type": "must_call_tool", "tool_name": "check_slots", "args_match": {"site": "Main St"}},
    {"type": "must_say", "pattern": "goodbye"},
]


def flow_events(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r["flow_event"] for r in rows if r["role"] == "flow_event" and r["flow_event"]["type"] == kind]


async def test_a_flow_run_records_its_path_as_flow_events_and_scores_must_reach_node(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(
        pool,
        company.id,
        agent=flow_agent_body(),
        persona=scripted_persona(["I need an appointment on Friday", "yes"]),
        success_criteria=REACHES,
    )
    async with pipeline(settings, pool, bus):
        run_id = await trigger(pool, settings, company.id, case_id)
        run = await finished(pool, run_id)
    rows = await turn_rows(pool, run_id)
    assert (run.status, run.termination_reason) == ("completed", "agent_ended")
    entered = [e["step_id"] for e in flow_events(rows, "flow_node_entered")]
    assert entered == ["start", "triage", "lookup", "offer", "book", "bye"]
    assert [r["turn_number"] for r in rows] == list(range(1, len(rows) + 1))
    evaluation: dict[str, Any] = dict(run.evaluation or {})
    verdicts = [(r["assertion"]["type"], r["passed"], r["reason"]) for r in evaluation["results"]]
    assert verdicts[0][:2] == ("must_reach_node", True)
    assert verdicts[0][2].startswith("reached at turn ")
    assert verdicts[1] == ("must_reach_node", False, "node human was never entered")
    assert verdicts[2][:2] == ("must_call_tool", True)
    assert verdicts[3][:2] == ("must_say", True)
    decisions = [
        r for r in rows if r["role"] == "flow_event" and r["flow_event"]["type"] == "flow_eval_decision"
    ]
    assert all(r["model"] == "scripted" and r["cost_microcents"] > 0 for r in decisions)
    assert run.agent_input_tokens == sum(
        r["input_tokens"] for r in rows if r["role"] in ("agent", "flow_event")
    )
    assert run.total_cost_cents == math.ceil(sum(r["cost_microcents"] for r in rows) / 1_000_000)
    assert await charges(pool, run_id) == [-run.total_cost_cents]
    types = await event_types(pool, run_id)
    assert types.count("turn") == len(rows)
