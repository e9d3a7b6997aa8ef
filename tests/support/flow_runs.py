"""Flow runs played end to end in this process (relay and roles on the in-process bus, real
PostgreSQL), and what their tests read back: the flow events of the stored transcript, the path,
and the transcript the hermetic `flow/test` simulation predicts for a run nobody interrupted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from pydantic import JsonValue

from service.bus.memory import InProcessBus
from service.core.settings import Settings
from service.db import runs
from service.db.postgres import Pool
from service.domain.flow_simulation import simulate_flow
from service.domain.flows import read_flow
from tests.support.factories import make_company
from tests.support.flows import flow_agent, flow_agent_body
from tests.support.pipeline import pipeline
from tests.support.scenarios import finished, make_case, scripted_persona, trigger, turn_rows

Row = dict[str, Any]


async def play_flow(
    pool: Pool,
    settings: Settings,
    bus: InProcessBus,
    lines: Sequence[str],
    agent: dict[str, Any] | None = None,
    **case: Any,
) -> tuple[runs.RunRow, list[Row]]:
    """Run a case of the flow agent (the shared one by default) against a scripted caller saying
    `lines`; the finished run and its transcript rows."""
    company = await make_company(pool, balance_cents=10_000)
    persona = scripted_persona(list(lines))
    case_id = await make_case(pool, company.id, agent=agent or flow_agent_body(), persona=persona, **case)
    async with pipeline(settings, pool, bus):
        run_id = await trigger(pool, settings, company.id, case_id)
        run = await finished(pool, run_id)
    return run, await turn_rows(pool, run_id)


def verdicts(run: runs.RunRow) -> list[dict[str, Any]]:
    """The run's assertion results, in the order of its success criteria."""
    results = (run.evaluation or {}).get("results")
    assert isinstance(results, list)
    return cast("list[dict[str, Any]]", results)


def flow_events(rows: Sequence[Row], kind: str) -> list[dict[str, Any]]:
    """The payloads of the rows' flow events of one type, in turn order."""
    return [r["flow_event"] for r in rows if r["role"] == "flow_event" and r["flow_event"]["type"] == kind]


def path_of(rows: Sequence[Row]) -> list[str]:
    """The nodes entered, in order."""
    return [e["step_id"] for e in flow_events(rows, "flow_node_entered")]


def said(rows: Sequence[Row]) -> list[tuple[str, str | None]]:
    """(role, text) of the persona and agent rows."""
    return [(r["role"], r["text"]) for r in rows if r["role"] in ("persona", "agent")]


def without_timing(event: JsonValue) -> JsonValue:
    """A flow event without `duration_ms` (the one field a replay may not reproduce)."""
    if not isinstance(event, dict):
        return event
    return {k: v for k, v in event.items() if k != "duration_ms"}


def comparable(rows: Sequence[Row]) -> list[tuple[Any, ...]]:
    """What a transcript says and does, row by row (no prices, timings or attempts)."""
    return [
        (
            r["turn_number"],
            r["role"],
            r["text"],
            r["tool_calls"],
            r["tool_result"],
            without_timing(r["flow_event"]),
        )
        for r in rows
    ]


def uninterrupted(lines: Sequence[str]) -> list[tuple[Any, ...]]:
    """The transcript of the shared flow agent's run with a caller saying `lines`, as the hermetic
    simulation (`POST /agents/{id}/flow/test`) plays it: the run no crash or restart touched."""
    agent = flow_agent()
    assert agent.flow_config is not None
    graph = read_flow(agent.flow_config.nodes, agent.flow_config.metadata)
    played = simulate_flow(agent, graph, lines, max_turns=50)
    return [
        (
            t.turn_number,
            t.role,
            t.text,
            [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in t.tool_calls] or None,
            t.tool_result,
            without_timing(t.flow_event),
        )
        for t in played.transcript
    ]
