"""A flow's `tool_call` node against a real local tool server, under `tool_policy` real and
allowlist: where each answer routes the flow (success, a hard failure, a custom branch on the
real body), the node's own timeout and URL override, and what is recorded — the agent's tool call,
its result, and the `flow_tool_result` event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pydantic import JsonValue

from service.bus.memory import InProcessBus
from service.core.settings import Settings
from service.db import runs
from service.db.postgres import Pool
from service.runtime.serving import serving
from tests.support.flow_runs import Row, flow_events, path_of, play_flow, said
from tests.support.flows import NODES, SLOTS_TOOL, flow_agent_body, with_node

LINES = ["I need an appointment on Friday", "yes"]
ARGUMENTS = {"day": "I need an appointment on Friday", "site": "Main St"}
OPEN = {"status": "open", "slots": ["10:00"]}
ROUTES: dict[str, JsonValue] = {
    "success_next_step_id": "offer",
    "error_next_step_id": "sorry",
    "custom": [{"id": "full", "jsonpath": "$.status", "equals": "full", "next_step_id": "waitlist"}],
}
HOLD_TOOL: dict[str, JsonValue] = {
    "id": "tool-hold",
    "name": "hold_slot",
    "description": "Hold a slot",
    "output_schema": {"type": "object", "properties": {"held": {"const": True}}},
}


@dataclass
class ToolServer:
    url: str = ""
    received: list[tuple[str, Any]] = field(default_factory=list)  # (path, body)
    status: int = 200
    body: Any = field(default_factory=lambda: OPEN)
    delay_s: float = 0.0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append((request.path, await request.json()))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.json_response(self.body, status=self.status)


@pytest.fixture
async def server() -> AsyncIterator[ToolServer]:
    tool_server = ToolServer()
    app = web.Application()
    app.router.add_post("/slots", tool_server.handle)
    app.router.add_post("/other", tool_server.handle)
    async with serving(app, "127.0.0.1", 0, shutdown_timeout_s=0.5) as url:
        tool_server.url = url
        yield tool_server


def tool_flow(
    server: ToolServer, nodes: list[JsonValue] | None = None, **lookup: JsonValue
) -> dict[str, Any]:
    """The shared flow with its lookup tool at the server, routed by ROUTES (`lookup` changes)."""
    changes: dict[str, JsonValue] = {"transitions": ROUTES, **lookup}
    changed = with_node("lookup", nodes if nodes is not None else NODES, **changes)
    tools: list[JsonValue] = [
        {**SLOTS_TOOL, "url": f"{server.url}/slots"},
        {**HOLD_TOOL, "url": f"{server.url}/other"},
    ]
    return flow_agent_body(changed, tools=tools)


async def play(
    pool: Pool,
    settings: Settings,
    bus: InProcessBus,
    agent: dict[str, Any],
    *,
    private: bool = True,
    **case: Any,
) -> tuple[runs.RunRow, list[Row]]:
    settings = settings.model_copy(update={"webhook_allow_private": private})
    return await play_flow(pool, settings, bus, LINES, agent, **{"tool_policy": "real", **case})


def lookup_result(rows: list[Row]) -> dict[str, Any]:
    [result] = [e for e in flow_events(rows, "flow_tool_result") if e["step_id"] == "lookup"]
    return result


def call_and_result(rows: list[Row], tool: str) -> tuple[Row, Row]:
    """The agent row calling `tool` and the tool_result row after it."""
    index = next(
        i
        for i, r in enumerate(rows)
        if r["role"] == "agent" and (r["tool_calls"] or [{}])[0].get("name") == tool
    )
    return rows[index], rows[index + 1]


async def test_a_real_answer_routes_the_node_to_success_and_is_recorded(
    pool: Pool, settings: Settings, bus: InProcessBus, server: ToolServer
) -> None:
    server.delay_s = 0.1
    run, rows = await play(pool, settings, bus, tool_flow(server))
    assert (run.status, run.termination_reason) == ("completed", "agent_ended")
    assert path_of(rows) == ["start", "triage", "lookup", "offer", "book", "bye"]
    assert server.received == [
        ("/slots", {"tool": "check_slots", "arguments": ARGUMENTS, "run_id": str(run.id)})
    ]
    call, answer = call_and_result(rows, "check_slots")
    call_id = f"flow-lookup-{call['turn_number']}"
    assert (call["text"], call["tool_calls"]) == (
        "Let me check the calendar.",
        [{"id": call_id, "name": "check_slots", "arguments": ARGUMENTS}],
    )
    assert answer["tool_result"] == {
        "tool_call_id": call_id,
        "name": "check_slots",
        "mocked": False,
        "result": OPEN,
        "status": 200,
    }
    result = lookup_result(rows)
    assert (result["status"], result["error"], result["mocked"]) == ("success", None, False)
    assert result["route"] == {"next_step_id": "offer", "outcome": "success", "branch_id": None}
    assert result["response_preview"] == json.dumps(OPEN, sort_keys=True)
    assert 100 <= result["duration_ms"] < 2_000
    assert answer["latency_ms"] == result["duration_ms"]


async def test_a_tool_answering_500_takes_the_error_route_even_when_a_branch_would_match(
    pool: Pool, settings: Settings, bus: InProcessBus, server: ToolServer
) -> None:
    server.status, server.body = 500, {"status": "full"}
    run, rows = await play(pool, settings, bus, tool_flow(server))
    assert (run.status, run.termination_reason) == ("completed", "agent_ended")
    assert path_of(rows) == ["start", "triage", "lookup", "sorry"]
    assert said(rows)[-1] == ("agent", "The calendar is down, sorry.")
    _, answer = call_and_result(rows, "check_slots")
    assert answer["tool_result"]["error"] == "HTTP 500"
    assert answer["tool_result"]["body"] == {"status": "full"}
    result = lookup_result(rows)
    assert (result["status"], result["error"]) == ("error", "HTTP 500")
    assert result["route"] == {"next_step_id": "sorry", "outcome": "error", "branch_id": None}
    assert result["response_preview"] == '{"status": "full"}'
    assert flow_events(rows, "flow_node_entered")[-1]["reason"] == "tool_error"


async def test_a_refused_call_takes_the_error_route_without_reaching_the_tool(
    pool: Pool, settings: Settings, bus: InProcessBus, server: ToolServer
) -> None:
    run, rows = await play(pool, settings, bus, tool_flow(server), private=False)  # the SSRF guard refuses
    assert path_of(rows) == ["start", "triage", "lookup", "sorry"]
    assert server.received == []
    result = lookup_result(rows)
    assert (result["status"], result["route"]["outcome"]) == ("error", "error")
    assert result["error"] == "refused: http scheme: only https:// URLs are called"
    assert run.termination_reason == "agent_ended"


async def test_a_tool_slower_than_the_nodes_timeout_is_a_hard_failure(
    pool: Pool, settings: Settings, bus: InProcessBus, server: ToolServer
) -> None:
    server.delay_s = 1.5
    run, rows = await play(pool, settings, bus, tool_flow(server, timeout_secs=0.3))
    assert path_of(rows) == ["start", "triage", "lookup", "sorry"]
    result = lookup_result(rows)
    assert (result["status"], result["error"]) == ("error", "timed out after 0.3 s")
    assert result["route"] == {"next_step_id": "sorry", "outcome": "error", "branch_id": None}
    assert 300 <= result["duration_ms"] < 1_500
    assert result["response_preview"] is None
    assert run.termination_reason == "agent_ended"


async def test_a_custom_branch_on_the_real_body_wins_over_success(
    pool: Pool, settings: Settings, bus: InProcessBus, server: ToolServer
) -> None:
    server.body = {"status": "full", "slots": []}
    run, rows = await play(pool, settings, bus, tool_flow(server))
    assert path_of(rows) == ["start", "triage", "lookup", "waitlist"]
    result = lookup_result(rows)
    assert (result["status"], result["error"]) == ("success", None)
    assert result["route"] == {"next_step_id": "waitlist", "outcome": "branch", "branch_id": "full"}
    entered = flow_events(rows, "flow_node_entered")[-1]
    assert (entered["reason"], entered["via_transition_id"]) == ("tool_branch", "full")
    assert said(rows)[-1] == ("agent", "We are full.")
    assert run.termination_reason == "agent_ended"


async def test_config_override_points_the_node_at_another_url(
    pool: Pool, settings: Settings, bus: InProcessBus, server: ToolServer
) -> None:
    _, rows = await play(
        pool, settings, bus, tool_flow(server, config_override={"url": f"{server.url}/other"})
    )
    assert [path for path, _ in server.received] == ["/other"]
    assert lookup_result(rows)["route"]["next_step_id"] == "offer"


async def test_allowlist_fires_only_the_allowlisted_tool_for_real(
    pool: Pool, settings: Settings, bus: InProcessBus, server: ToolServer
) -> None:
    hold: JsonValue = {
        "id": "hold",
        "type": "tool_call",
        "tool_id": "tool-hold",
        "args_template": {"day": "{{lookup.day}}"},
        "transitions": {"success_next_step_id": "offer", "error_next_step_id": "sorry"},
    }
    nodes = [*NODES, hold]
    agent = tool_flow(server, nodes, transitions={**ROUTES, "success_next_step_id": "hold"})
    run, rows = await play(
        pool, settings, bus, agent, tool_policy="allowlist", tool_allowlist=["check_slots"]
    )
    assert path_of(rows) == ["start", "triage", "lookup", "hold", "offer", "book", "bye"]
    assert [(path, body["tool"]) for path, body in server.received] == [("/slots", "check_slots")]
    results = [(e["step_id"], e["mocked"], e["status"]) for e in flow_events(rows, "flow_tool_result")]
    assert results[:2] == [("lookup", False, "success"), ("hold", True, "success")]
    _, held = call_and_result(rows, "hold_slot")
    assert held["tool_result"]["result"] == {"held": True}
    assert flow_events(rows, "flow_tool_result")[1]["args"] == {"day": ARGUMENTS["day"]}
    assert run.termination_reason == "agent_ended"
