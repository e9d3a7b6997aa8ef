"""`POST /agents/{id}/flow/test`: a flow played hermetically against caller lines — the path,
the rows, every error path — creating no run and charging nothing."""

from __future__ import annotations

from service.db.postgres import Pool
from tests.support.api import (
    Client,
    Json,
    Tenant,
    agent_body,
    allowed_with_scope,
    created,
    not_found,
    refused_field,
    refused_without_scope,
    row_count,
)
from tests.support.flows import NODES, flow_agent_body, with_node

LINES = {"caller_lines": ["I need an appointment on Friday", "yes"]}


async def flow_test(client: Client, tenant: Tenant, agent_id: str, body: Json) -> tuple[int, Json]:
    response = await client.post(f"/agents/{agent_id}/flow/test", json=body, headers=tenant.headers())
    return response.status, await response.json()


async def test_the_flow_is_played_and_nothing_is_created_or_charged(
    client: Client, tenant: Tenant, database_url: str
) -> None:
    agent = await created(client, tenant, "/agents", flow_agent_body())
    balance = await row_count(database_url, "credit_ledger")
    status, body = await flow_test(client, tenant, agent["id"], LINES)
    assert status == 200
    assert body["path"] == ["start", "triage", "lookup", "offer", "book", "bye"]
    assert body["termination_reason"] == "agent_ended"
    assert body["cost_cents"] == 0
    kinds = [t["flow_event"]["type"] for t in body["turns"] if t["role"] == "flow_event"]
    assert "flow_eval_decision" in kinds
    assert "flow_tool_result" in kinds
    assert body["turns"][-1] == {
        "turn_number": len(body["turns"]),
        "role": "agent",
        "text": "See you then, goodbye!",
        "tool_calls": None,
        "tool_result": None,
        "flow_event": None,
    }
    assert await row_count(database_url, "eval_runs") == 0
    assert await row_count(database_url, "credit_ledger") == balance


async def test_an_unsaved_flow_can_be_tried_without_changing_the_agent(
    client: Client, tenant: Tenant
) -> None:
    agent = await created(client, tenant, "/agents", flow_agent_body())
    edited = {"nodes": with_node("offer", transitions=[]), "metadata": {"site": "Main St"}}
    status, body = await flow_test(client, tenant, agent["id"], {**LINES, "flow_config": edited})
    assert status == 200
    assert body["path"] == ["start", "triage", "lookup", "offer"]  # no way on from offer any more
    fetched = await client.get(f"/agents/{agent['id']}", headers=tenant.headers())
    assert (await fetched.json())["flow_config"]["nodes"] == NODES


async def test_an_unsaved_flow_with_issues_is_flow_invalid(client: Client, tenant: Tenant) -> None:
    agent = await created(client, tenant, "/agents", flow_agent_body())
    broken = {"nodes": with_node("triage", instructions="")}
    status, body = await flow_test(client, tenant, agent["id"], {**LINES, "flow_config": broken})
    assert (status, body["code"]) == (400, "FLOW_INVALID")
    assert body["issues"][0]["node_id"] == "triage"


async def test_a_prompt_agent_has_no_flow_to_test(client: Client, tenant: Tenant) -> None:
    agent = await created(client, tenant, "/agents", agent_body())
    status, body = await flow_test(client, tenant, agent["id"], LINES)
    assert (status, body["code"]) == (422, "NOT_A_FLOW_AGENT")


async def test_a_missing_agent_is_404(client: Client, tenant: Tenant) -> None:
    response = await client.post(
        "/agents/01a2379b-fb90-7d17-ae20-7e18d21d7b62/flow/test", json=LINES, headers=tenant.headers()
    )
    await not_found(response)


async def test_bad_bodies_are_400_naming_the_field(client: Client, tenant: Tenant) -> None:
    agent = await created(client, tenant, "/agents", flow_agent_body())
    url = f"/agents/{agent['id']}/flow/test"
    for body, field in (
        ({}, "body.caller_lines"),
        ({"caller_lines": "hello"}, "body.caller_lines"),
        ({"caller_lines": [], "max_turns": 0}, "body.max_turns"),
        ({"caller_lines": [], "surprise": 1}, "body.surprise"),
    ):
        await refused_field(await client.post(url, json=body, headers=tenant.headers()), field)


async def test_it_needs_the_flows_test_scope(client: Client, tenant: Tenant, pool: Pool) -> None:
    agent = await created(client, tenant, "/agents", flow_agent_body())
    url = f"/agents/{agent['id']}/flow/test"
    held = ("agents:read", "agents:update", "flows:test")
    await refused_without_scope(client, pool, tenant, "post", url, LINES, "flows:test", held)
    await allowed_with_scope(client, pool, tenant, "post", url, LINES, "flows:test")
