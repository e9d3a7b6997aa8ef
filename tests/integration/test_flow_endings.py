"""How a flow run ends: a transfer or end node ends it `agent_ended` with its line as the agent's
last words (a non-literal farewell said as written by the scripted model); a tool failure with no
error route is a dead end that fails the run `FLOW_DEAD_END`; a stored flow that no longer reads
fails the run `FLOW_INVALID` before a word is said."""

from __future__ import annotations

from service.bus.memory import InProcessBus
from service.core.settings import Settings
from service.db.postgres import Pool
from tests.support.flow_runs import flow_events, path_of, play_flow, said, verdicts
from tests.support.flows import SLOTS_TOOL, flow_agent_body, with_node
from tests.support.scenarios import assert_billed_for_turns, event_types


async def test_a_transfer_node_ends_the_run_with_the_transfer_message(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    reaches = [{"type": "must_reach_node", "node_id": "handoff"}]
    run, rows = await play_flow(
        pool, settings, bus, ["I want a person", "please", "hello?"], success_criteria=reaches
    )
    assert (run.status, run.termination_reason, run.error_code) == ("completed", "agent_ended", None)
    assert path_of(rows) == ["start", "triage", "human", "handoff"]
    assert rows[-1]["role"] == "agent"
    assert said(rows)[-2:] == [("persona", "please"), ("agent", "Transferring you now.")]
    entered = flow_events(rows, "flow_node_entered")[-1]
    assert (entered["node_kind"], entered["reason"], entered["via_transition_id"]) == (
        "transfer",
        "transition",
        "go",
    )
    assert [(v["passed"], v["reason"]) for v in verdicts(run)] == [(True, f"reached at turn {len(rows) - 1}")]
    assert run.pass_fail is True


async def test_a_non_literal_farewell_is_said_as_written_by_the_scripted_model_and_priced(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    farewell = "Thank the caller and say goodbye"
    agent = flow_agent_body(with_node("bye", farewell=farewell, is_literal=False))
    run, rows = await play_flow(pool, settings, bus, ["I need an appointment on Friday", "yes"], agent)
    assert (run.status, run.termination_reason) == ("completed", "agent_ended")
    assert path_of(rows)[-1] == "bye"
    last = rows[-1]
    assert (last["role"], last["text"], last["model"]) == ("agent", farewell, "scripted")
    assert last["output_tokens"] == len(farewell.split())
    assert last["cost_microcents"] > 0
    await assert_billed_for_turns(pool, run)


async def test_a_tool_failure_with_no_error_route_fails_the_run_as_a_dead_end(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    nodes = with_node("lookup", transitions={"success_next_step_id": "offer"})
    unreachable = {**SLOTS_TOOL, "url": "http://127.0.0.1:1/slots"}  # refused by the SSRF guard
    agent = flow_agent_body(nodes, tools=[unreachable])
    run, rows = await play_flow(pool, settings, bus, ["appointment", "yes"], agent, tool_policy="real")
    assert (run.status, run.termination_reason, run.error_code) == ("failed", "error", "FLOW_DEAD_END")
    assert run.error == "flow node 'lookup' has no next step for its error result"
    assert path_of(rows) == ["start", "triage", "lookup"]
    [result] = flow_events(rows, "flow_tool_result")
    assert result["route"] == {"next_step_id": None, "outcome": "error", "branch_id": None}
    assert rows[-1]["flow_event"] == result  # the run ended with the round that recorded the failure
    assert (run.score, run.pass_fail) == (None, None)
    assert "scored" not in await event_types(pool, run.id)
    await assert_billed_for_turns(pool, run)


async def test_a_stored_flow_that_no_longer_reads_fails_the_run_flow_invalid_before_it_starts(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    # Saved through the db layer, as an agent saved before the flow checks existed would be.
    agent = flow_agent_body(
        with_node("offer", transitions=[{"id": "x", "description": "d", "next_step_id": "gone"}])
    )
    run, rows = await play_flow(pool, settings, bus, ["appointment"], agent)
    assert (run.status, run.termination_reason, run.error_code) == ("failed", "error", "FLOW_INVALID")
    assert run.error == "the flow cannot be played: offer: next_step_id 'gone' does not name a node"
    assert rows == []
    assert (run.total_cost_cents, run.score) == (0, None)
    assert await event_types(pool, run.id) == ["queued", "started", "failed", "billed", "done"]
    await assert_billed_for_turns(pool, run)
