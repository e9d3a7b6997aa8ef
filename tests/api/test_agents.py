"""`/agents`: every endpoint's success, validation error, not found, another company's id, missing scope."""

from __future__ import annotations

import pytest

from service.db.postgres import Pool
from tests.support.api import (
    Client,
    Json,
    Tenant,
    agent_body,
    allowed_with_scope,
    created,
    deleted,
    first_row,
    gone,
    refused_field,
    refused_query,
    refused_without_scope,
    row_count,
)

AGENT_SCOPES = ("agents:read", "agents:create", "agents:update", "agents:delete", "agent_eval:read")

FLOW = {
    "flow_config_version": "1",
    "nodes": [
        {"id": "start", "type": "start", "name": "Start", "next_step_id": "talk"},
        {
            "id": "talk",
            "type": "conversation",
            "name": "Talk",
            "instructions": "Help.",
            "transitions": [{"id": "t1", "label": "done", "description": "done", "next_step_id": "end"}],
        },
        {"id": "end", "type": "end", "name": "End"},
    ],
}


async def _agent(client: Client, tenant: Tenant, **overrides: object) -> Json:
    return await created(client, tenant, "/agents", agent_body(**overrides))


async def test_create_returns_the_agent_with_defaults_and_every_reference_field(
    client: Client, tenant: Tenant
) -> None:
    agent = await _agent(client, tenant, voice="Rachel", vad_stop_secs=1.5, webhook_events=["call.ended"])
    assert agent["company_id"] == tenant.company_id
    assert (agent["type"], agent["temperature"], agent["agent_speaks_first"], agent["language"]) == (
        "prompt",
        0.5,
        True,
        "en",
    )
    assert (agent["voice"], agent["vad_stop_secs"], agent["webhook_events"]) == (
        "Rachel",
        1.5,
        ["call.ended"],
    )
    assert (agent["max_call_duration_secs"], agent["is_active"], agent["tools"]) == (600, True, [])
    response = await client.get(f"/agents/{agent['id']}", headers=tenant.headers())
    assert response.status == 200
    assert await response.json() == agent


async def test_tools_in_the_reference_shape_are_accepted_and_echoed(client: Client, tenant: Tenant) -> None:
    tool = {
        "id": "t-1",
        "name": "book_slot",
        "type": "webhook",
        "description": "Book a slot",
        "config": {"url": "https://example.com/book", "parameters": {"type": "object"}, "method": "POST"},
        "execution_order": 1,
    }
    agent = await _agent(client, tenant, tools=[tool])
    assert agent["tools"][0]["config"] == tool["config"]
    assert agent["tools"][0]["execution_order"] == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"temperature": 2.5}, "body.temperature"),
        ({"temperature": "1"}, "body.temperature"),
        ({"type": "voice"}, "body.type"),
        ({"model": "unknownprovider:gpt"}, "body.model"),
        ({"model": "not a model"}, "body.model"),
        ({"frobnicate": True}, "body.frobnicate"),
        ({"tools": [{"name": "end_call"}]}, "body.tools.0.name"),
        ({"tools": [{"name": "a"}, {"name": "a"}]}, "body.tools.1.name"),
        ({"tools": [{"name": "a", "parameters": {"type": "string"}}]}, "body.tools.0.parameters"),
        ({"tools": [{"name": "a", "parameters": {"type": 5}}]}, "body.tools.0.parameters"),
        ({"tools": [{"name": "a", "url": "http://example.com"}]}, "body.tools.0.url"),
        ({"tools": [{"name": "bad name"}]}, "body.tools.0.name"),
        ({"rules": [{"when": "(a"}]}, "body.rules.0"),
        ({"rules": [{"when": "(a", "say": "x"}]}, "body.rules.0.when"),
        ({"rules": [{"when": "x", "call_tool": {"name": "nope"}}]}, "body.rules.0.call_tool.name"),
        ({"webhook_events": ["agent_eval.run.done"]}, "body.webhook_events.0"),
        ({"max_call_duration_secs": 3601}, "body.max_call_duration_secs"),
        ({"name": ""}, "body.name"),
        ({"system_prompt": None}, "body.system_prompt"),
    ],
)
async def test_invalid_agents_are_refused_naming_the_field_and_nothing_is_written(
    client: Client, tenant: Tenant, database_url: str, overrides: Json, field: str
) -> None:
    response = await client.post("/agents", json=agent_body(**overrides), headers=tenant.headers())
    await refused_field(response, field)
    assert await row_count(database_url, "agents") == 0


async def test_a_flow_agent_needs_a_well_formed_graph(client: Client, tenant: Tenant) -> None:
    agent = await _agent(client, tenant, type="flow", flow_config=FLOW)
    assert agent["flow_config"]["nodes"][0]["id"] == "start"
    broken = {"nodes": [{"id": "a", "type": "start", "next_step_id": "nowhere"}, {"id": "a", "type": "end"}]}
    response = await client.post(
        "/agents", json=agent_body(type="flow", flow_config=broken), headers=tenant.headers()
    )
    body = await response.json()
    assert (response.status, body["code"]) == (400, "FLOW_INVALID")
    assert {issue["code"] for issue in body["issues"]} == {"duplicate_node_id", "unknown_next_step"}
    no_start = {"nodes": [{"id": "a", "type": "end"}]}
    response = await client.post(
        "/agents", json=agent_body(type="flow", flow_config=no_start), headers=tenant.headers()
    )
    assert [i["code"] for i in (await response.json())["issues"]] == ["start_node_count"]


async def test_flow_config_must_match_the_type(client: Client, tenant: Tenant) -> None:
    for body in (agent_body(type="flow"), agent_body(flow_config=FLOW)):
        response = await client.post("/agents", json=body, headers=tenant.headers())
        assert response.status == 400


async def test_list_is_newest_first_paginated_and_filterable(client: Client, tenant: Tenant) -> None:
    made = [await _agent(client, tenant, name=f"a{i}") for i in range(3)]
    await _agent(client, tenant, name="flowy", type="flow", flow_config=FLOW)
    response = await client.get("/agents?limit=2&offset=1", headers=tenant.headers())
    page = await response.json()
    assert [a["name"] for a in page["data"]] == ["a2", "a1"]
    assert page["pagination"] == {"total": 4, "limit": 2, "offset": 1, "has_more": True}
    response = await client.get("/agents?type=prompt", headers=tenant.headers())
    assert {a["id"] for a in (await response.json())["data"]} == {a["id"] for a in made}


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "offset=-1", "limit=abc", "type=voice", "sort=name"]
)
async def test_bad_list_queries_are_refused(client: Client, tenant: Tenant, query: str) -> None:
    await refused_query(client, tenant, f"/agents?{query}")


async def test_patch_changes_only_what_is_sent(client: Client, tenant: Tenant) -> None:
    agent = await _agent(client, tenant, greeting_message="Hello!")
    response = await client.patch(
        f"/agents/{agent['id']}",
        json={"temperature": 1.5, "greeting_message": None},
        headers=tenant.headers(),
    )
    updated = await response.json()
    assert response.status == 200
    assert (updated["temperature"], updated["greeting_message"], updated["name"]) == (
        1.5,
        None,
        agent["name"],
    )
    assert updated["updated_at"] > agent["updated_at"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"type": "flow"}, "body.type"),
        ({"temperature": None}, "body.temperature"),
        ({"temperature": 3}, "body.temperature"),
        ({"nope": 1}, "body.nope"),
        ({"flow_config": FLOW}, "body"),
    ],
)
async def test_invalid_patches_are_refused_and_change_nothing(
    client: Client, tenant: Tenant, patch: Json, field: str
) -> None:
    agent = await _agent(client, tenant)
    response = await client.patch(f"/agents/{agent['id']}", json=patch, headers=tenant.headers())
    body = await response.json()
    assert response.status == 400
    assert field in [f["field"] for f in body["fields"]], body
    assert await (await client.get(f"/agents/{agent['id']}", headers=tenant.headers())).json() == agent


async def test_patching_the_same_type_is_fine(client: Client, tenant: Tenant) -> None:
    agent = await _agent(client, tenant)
    response = await client.patch(f"/agents/{agent['id']}", json={"type": "prompt"}, headers=tenant.headers())
    assert response.status == 200


async def test_delete_is_soft_and_final(client: Client, tenant: Tenant, database_url: str) -> None:
    agent = await _agent(client, tenant)
    await deleted(client, tenant, f"/agents/{agent['id']}")
    await gone(client, tenant, f"/agents/{agent['id']}")
    row = await first_row(database_url, "SELECT deleted_at, is_active FROM agents")
    assert row is not None
    assert row["deleted_at"] is not None
    assert row["is_active"] is False
    listed = await (await client.get("/agents", headers=tenant.headers())).json()
    assert listed["data"] == []


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
async def test_another_companys_agent_looks_missing(
    client: Client, tenant: Tenant, stranger: Tenant, method: str
) -> None:
    theirs = await _agent(client, stranger)
    missing = await client.request(
        method, "/agents/01a20000-0000-7000-8000-000000000000", json={}, headers=tenant.headers()
    )
    foreign = await client.request(method, f"/agents/{theirs['id']}", json={}, headers=tenant.headers())
    assert (missing.status, foreign.status) == (404, 404)
    assert await missing.json() == {**await foreign.json(), "error": (await missing.json())["error"]}
    listed = await (await client.get("/agents", headers=tenant.headers())).json()
    assert listed["pagination"]["total"] == 0


async def test_a_bad_id_in_the_path_is_a_400(client: Client, tenant: Tenant) -> None:
    response = await client.get("/agents/not-a-uuid", headers=tenant.headers())
    body = await response.json()
    assert (response.status, body["fields"][0]["field"]) == (400, "path.id")


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("post", "/agents", "agents:create"),
        ("get", "/agents", "agents:read"),
        ("get", "/agents/{id}", "agents:read"),
        ("patch", "/agents/{id}", "agents:update"),
        ("delete", "/agents/{id}", "agents:delete"),
    ],
)
async def test_each_endpoint_needs_its_scope(
    client: Client, tenant: Tenant, pool: Pool, method: str, path: str, scope: str
) -> None:
    agent = await _agent(client, tenant)
    url = path.format(id=agent["id"])
    await refused_without_scope(client, pool, tenant, method, url, agent_body(), scope, AGENT_SCOPES)
    await allowed_with_scope(client, pool, tenant, method, url, agent_body(), scope)


async def test_text_the_database_cannot_store_is_a_400_not_a_500(
    client: Client, tenant: Tenant, database_url: str
) -> None:
    response = await client.post(
        "/agents", json=agent_body(system_prompt="nul \u0000 here"), headers=tenant.headers()
    )
    body = await response.json()
    assert (response.status, body["code"], body["fields"][0]["field"]) == (400, "VALIDATION_ERROR", "body")
    assert await row_count(database_url, "agents") == 0


async def test_numbers_too_big_for_a_float_are_refused_even_inside_free_form_json(
    client: Client, tenant: Tenant, database_url: str
) -> None:
    raw = '{"name": "a", "system_prompt": "b", "tools": [{"name": "t", "output_schema": {"default": 1e400}}]}'
    response = await client.post(
        "/agents", data=raw, headers={**tenant.headers(), "Content-Type": "application/json"}
    )
    body = await response.json()
    assert (response.status, body["code"]) == (400, "VALIDATION_ERROR")
    assert body["fields"][0]["field"] == "body.tools.0.output_schema"
    assert await row_count(database_url, "agents") == 0
