"""`/agent-eval/cases`: every endpoint's success, validation error, not found, another company's id,
missing scope; agent and persona embedded; assertions and agent overrides validated."""

from __future__ import annotations

import uuid

import pytest
from aiohttp import ClientResponse

from service.db.postgres import Pool
from tests.support.api import (
    COLLECTIONS,
    EVAL_SCOPES,
    Client,
    Json,
    Tenant,
    World,
    agent_body,
    allowed_with_scope,
    created,
    deleted,
    gone,
    listed,
    looks_missing,
    make_world,
    not_found,
    persona_body,
    refused_bad_path_id,
    refused_field,
    refused_query,
    refused_without_scope,
    row_count,
    soft_deleted,
    suite_body,
    unusable_id,
)

CASES = "/agent-eval/cases"
HOWS = ["foreign", "deleted", "missing"]
MUST_SAY: Json = {"type": "must_say", "pattern": "heating", "weight": 1.0, "description": None}


@pytest.fixture
async def world(client: Client, tenant: Tenant) -> World:
    return await make_world(client, tenant)


async def _case(client: Client, tenant: Tenant, world: World, **overrides: object) -> Json:
    return await created(client, tenant, CASES, world.body(**overrides))


async def _get(client: Client, tenant: Tenant, case_id: str) -> ClientResponse:
    return await client.get(f"{CASES}/{case_id}", headers=tenant.headers())


async def _patch(client: Client, tenant: Tenant, case_id: str, patch: Json) -> ClientResponse:
    return await client.patch(f"{CASES}/{case_id}", json=patch, headers=tenant.headers())


async def _listed(client: Client, tenant: Tenant, query: str = "") -> Json:
    return await listed(client, tenant, f"{CASES}?{query}")


async def _cannot_move_to(
    client: Client, tenant: Tenant, stranger: Tenant, world: World, resource: str, how: str
) -> None:
    """Assert a case cannot be moved to an unusable `resource` (see `unusable_id`) and stays as it was."""
    case = await _case(client, tenant, world)
    reference = await unusable_id(client, tenant, stranger, resource, how)
    await not_found(await _patch(client, tenant, case["id"], {f"{resource}_id": reference}))
    assert await (await _get(client, tenant, case["id"])).json() == case


async def test_create_returns_the_case_with_defaults_and_its_agent_and_persona(
    client: Client, tenant: Tenant, world: World
) -> None:
    case = await _case(client, tenant, world)
    assert (case["company_id"], case["agent_id"], case["persona_id"]) == (
        tenant.company_id,
        world.agent["id"],
        world.persona["id"],
    )
    assert (case["name"], case["scenario"]) == (
        "Heating complaint",
        "The heating has been broken for three days.",
    )
    assert (case["max_turns"], case["pass_threshold"], case["tool_policy"]) == (20, 80, "mock")
    assert (case["tool_allowlist"], case["success_criteria"], case["agent_overrides"]) == ([], [], None)
    assert (case["suite_id"], case["description"], case["deleted_at"]) == (None, None, None)
    assert (case["agent"], case["persona"]) == (world.agent, world.persona)
    response = await _get(client, tenant, case["id"])
    assert response.status == 200
    assert await response.json() == case
    assert (await _listed(client, tenant))["data"] == [case]


async def test_create_keeps_every_field_sent(client: Client, tenant: Tenant, world: World) -> None:
    suite = await created(client, tenant, COLLECTIONS["suite"], suite_body())
    criteria: list[Json] = [
        MUST_SAY,
        {"type": "must_not_say", "pattern": "(?i)refund", "weight": 2.5, "description": "no refunds"},
        {"type": "must_call_tool", "tool_name": "book_slot", "args_match": {"date": "$present"}},
        {"type": "must_reach_node", "node_id": "end"},
        {"type": "custom_llm_judge", "rubric": "Was polite.", "samples": 3, "model": "openai:gpt-4o"},
    ]
    case = await _case(
        client,
        tenant,
        world,
        description="Boiler",
        suite_id=suite["id"],
        success_criteria=criteria,
        max_turns=100,
        pass_threshold=0,
        tool_policy="allowlist",
        tool_allowlist=["book_slot"],
    )
    assert (case["description"], case["suite_id"], case["max_turns"], case["pass_threshold"]) == (
        "Boiler",
        suite["id"],
        100,
        0,
    )
    assert (case["tool_policy"], case["tool_allowlist"]) == ("allowlist", ["book_slot"])
    assert case["success_criteria"] == [
        MUST_SAY,
        criteria[1],
        {**criteria[2], "weight": 1.0, "description": None},
        {**criteria[3], "weight": 1.0, "description": None},
        {**criteria[4], "weight": 1.0, "description": None},
    ]
    assert await (await _get(client, tenant, case["id"])).json() == case


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_turns": 0}, "body.max_turns"),
        ({"max_turns": 101}, "body.max_turns"),
        ({"max_turns": "5"}, "body.max_turns"),
        ({"pass_threshold": -1}, "body.pass_threshold"),
        ({"pass_threshold": 101}, "body.pass_threshold"),
        ({"tool_policy": "sometimes"}, "body.tool_policy"),
        ({"tool_allowlist": ["bad name"]}, "body.tool_allowlist.0"),
        ({"name": ""}, "body.name"),
        ({"scenario": ""}, "body.scenario"),
        ({"scenario": None}, "body.scenario"),
        ({"persona_id": None}, "body.persona_id"),
        ({"persona_id": "not-a-uuid"}, "body.persona_id"),
        ({"agent_id": "not-a-uuid"}, "body.agent_id"),
        ({"suite_id": "not-a-uuid"}, "body.suite_id"),
        ({"success_criteria": {"type": "must_say"}}, "body.success_criteria"),
        ({"frobnicate": True}, "body.frobnicate"),
    ],
)
async def test_invalid_cases_are_refused_naming_the_field_and_nothing_is_written(
    client: Client, tenant: Tenant, world: World, database_url: str, overrides: Json, field: str
) -> None:
    response = await client.post(CASES, json=world.body(**overrides), headers=tenant.headers())
    await refused_field(response, field)
    assert await row_count(database_url, "eval_cases") == 0


@pytest.mark.parametrize(
    ("criterion", "field"),
    [
        ({"type": "must_say"}, "body.success_criteria.1.pattern"),
        ({"type": "must_say", "pattern": ""}, "body.success_criteria.1.pattern"),
        ({"type": "must_say", "pattern": "(a"}, "body.success_criteria.1.pattern"),
        ({"type": "must_say", "pattern": "(a)\\1"}, "body.success_criteria.1.pattern"),
        ({"type": "must_not_say"}, "body.success_criteria.1.pattern"),
        ({"type": "must_not_say", "pattern": "(a"}, "body.success_criteria.1.pattern"),
        ({"type": "must_not_say", "pattern": "(?=a)b"}, "body.success_criteria.1.pattern"),
        ({"type": "must_say", "pattern": "x", "weight": 0}, "body.success_criteria.1.weight"),
        ({"type": "must_say", "pattern": "x", "weight": -1}, "body.success_criteria.1.weight"),
        ({"type": "must_call_tool"}, "body.success_criteria.1.tool_name"),
        ({"type": "must_call_tool", "tool_name": "bad name"}, "body.success_criteria.1.tool_name"),
        ({"type": "must_call_tool", "tool_name": "t", "weight": 0}, "body.success_criteria.1.weight"),
        ({"type": "must_reach_node"}, "body.success_criteria.1.node_id"),
        ({"type": "custom_llm_judge"}, "body.success_criteria.1.rubric"),
        ({"type": "custom_llm_judge", "rubric": "r", "samples": 2}, "body.success_criteria.1.samples"),
        ({"type": "custom_llm_judge", "rubric": "r", "model": "nope:x"}, "body.success_criteria.1.model"),
        ({"type": "must_sing", "pattern": "x"}, "body.success_criteria.1"),
        ({"pattern": "x"}, "body.success_criteria.1"),
        ({"type": "must_say", "pattern": "x", "extra": 1}, "body.success_criteria.1.extra"),
        ({"kind": "must_say", "phrase": "(a", "match_type": "regex"}, "body.success_criteria.1.pattern"),
    ],
)
async def test_invalid_assertions_are_refused_naming_the_field_and_nothing_is_written(
    client: Client, tenant: Tenant, world: World, database_url: str, criterion: Json, field: str
) -> None:
    body = world.body(success_criteria=[MUST_SAY, criterion])
    response = await client.post(CASES, json=body, headers=tenant.headers())
    await refused_field(response, field)
    assert await row_count(database_url, "eval_cases") == 0


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ({"kind": "must_say", "phrase": "Hello?"}, {"type": "must_say", "pattern": "Hello\\?"}),
        ({"kind": "must_not_say", "phrase": "a.b (c)"}, {"type": "must_not_say", "pattern": "a\\.b \\(c\\)"}),
        (
            {"kind": "must_say", "phrase": "Hello?", "match_type": "substring"},
            {"type": "must_say", "pattern": "Hello\\?"},
        ),
        (
            {"kind": "must_say", "phrase": "hel+o.*", "match_type": "regex"},
            {"type": "must_say", "pattern": "hel+o.*"},
        ),
        (
            {"kind": "must_say", "phrase": "Hello?", "case_sensitive": True},
            {"type": "must_say", "pattern": "(?-i:Hello\\?)"},
        ),
        (
            {"kind": "must_say", "phrase": "Hel+o", "match_type": "regex", "case_sensitive": True},
            {"type": "must_say", "pattern": "(?-i:Hel+o)"},
        ),
        (
            {"kind": "must_say", "phrase": "Hi", "case_sensitive": False},
            {"type": "must_say", "pattern": "Hi"},
        ),
    ],
)
async def test_assertions_in_the_secondary_shape_are_rewritten(
    client: Client, tenant: Tenant, world: World, sent: Json, stored: Json
) -> None:
    case = await _case(client, tenant, world, success_criteria=[sent])
    assert case["success_criteria"] == [{**stored, "weight": 1.0, "description": None}]
    assert (await (await _get(client, tenant, case["id"])).json())["success_criteria"] == case[
        "success_criteria"
    ]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"frobnicate": 1}, "body.agent_overrides.frobnicate"),
        ({"type": "flow"}, "body.agent_overrides.type"),
        ({"temperature": 3}, "body.agent_overrides.temperature"),
        ({"temperature": None}, "body.agent_overrides.temperature"),
        ({"system_prompt": None}, "body.agent_overrides.system_prompt"),
        ({"model": "nope:x"}, "body.agent_overrides.model"),
        ({"tools": [{"name": "end_call"}]}, "body.agent_overrides.tools.0.name"),
        ({"webhook_url": "http://example.com/hook"}, "body.agent_overrides.webhook_url"),
        ({"rules": [{"when": "(a", "say": "x"}]}, "body.agent_overrides.rules.0.when"),
    ],
)
async def test_invalid_agent_overrides_are_refused_naming_the_key_and_nothing_is_written(
    client: Client, tenant: Tenant, world: World, database_url: str, overrides: Json, field: str
) -> None:
    response = await client.post(CASES, json=world.body(agent_overrides=overrides), headers=tenant.headers())
    await refused_field(response, field)
    assert await row_count(database_url, "eval_cases") == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"system_prompt": "Draft"},
        {"temperature": 1.5, "greeting_message": None},
        {"model": "openai:gpt-4o-mini", "tools": [{"name": "book_slot", "parameters": {"type": "object"}}]},
    ],
)
async def test_agent_overrides_come_back_exactly_as_sent(
    client: Client, tenant: Tenant, world: World, overrides: Json
) -> None:
    case = await _case(client, tenant, world, agent_overrides=overrides)
    echoed = case["agent_overrides"]
    if "tools" in overrides:  # a tool comes back with its defaults filled in, nothing else
        assert echoed["tools"][0]["parameters"] == {"type": "object"}
        echoed = {**echoed, "tools": overrides["tools"]}
    assert echoed == overrides
    assert (await (await _get(client, tenant, case["id"])).json())["agent_overrides"] == case[
        "agent_overrides"
    ]


@pytest.mark.parametrize("resource", ["agent", "persona", "suite"])
@pytest.mark.parametrize("how", HOWS)
async def test_references_must_be_live_and_the_companys(
    client: Client,
    tenant: Tenant,
    stranger: Tenant,
    world: World,
    database_url: str,
    resource: str,
    how: str,
) -> None:
    reference = await unusable_id(client, tenant, stranger, resource, how)
    response = await client.post(
        CASES, json=world.body(**{f"{resource}_id": reference}), headers=tenant.headers()
    )
    await not_found(response)
    assert await row_count(database_url, "eval_cases") == 0


async def test_a_case_without_an_agent_takes_its_suites(client: Client, tenant: Tenant, world: World) -> None:
    suite = await created(client, tenant, COLLECTIONS["suite"], suite_body(agent_id=world.agent["id"]))
    body = world.body(suite_id=suite["id"])
    del body["agent_id"]
    case = await created(client, tenant, CASES, body)
    assert (case["agent_id"], case["agent"], case["suite_id"]) == (
        world.agent["id"],
        world.agent,
        suite["id"],
    )


async def test_a_cases_own_agent_wins_over_its_suites(client: Client, tenant: Tenant, world: World) -> None:
    other = await created(client, tenant, "/agents", agent_body(name="Other"))
    suite = await created(client, tenant, COLLECTIONS["suite"], suite_body(agent_id=other["id"]))
    case = await _case(client, tenant, world, suite_id=suite["id"])
    assert (case["agent_id"], case["agent"]) == (world.agent["id"], world.agent)


@pytest.mark.parametrize("with_suite", [False, True])
async def test_a_case_without_an_agent_needs_a_suite_with_one(
    client: Client, tenant: Tenant, world: World, database_url: str, with_suite: bool
) -> None:
    body = world.body()
    del body["agent_id"]
    if with_suite:
        body["suite_id"] = (await created(client, tenant, COLLECTIONS["suite"], suite_body()))["id"]
    response = await client.post(CASES, json=body, headers=tenant.headers())
    await refused_field(response, "body.agent_id")
    assert await row_count(database_url, "eval_cases") == 0


async def test_the_suites_agent_must_still_be_live(
    client: Client, tenant: Tenant, world: World, database_url: str
) -> None:
    agent = await created(client, tenant, "/agents", agent_body())
    suite = await created(client, tenant, COLLECTIONS["suite"], suite_body(agent_id=agent["id"]))
    await deleted(client, tenant, f"/agents/{agent['id']}")
    body = world.body(suite_id=suite["id"])
    del body["agent_id"]
    await not_found(await client.post(CASES, json=body, headers=tenant.headers()))
    assert await row_count(database_url, "eval_cases") == 0


async def test_list_is_newest_first_paginated_and_embeds_agent_and_persona(
    client: Client, tenant: Tenant, world: World
) -> None:
    made = [await _case(client, tenant, world, name=f"c{i}") for i in range(4)]
    page = await _listed(client, tenant, "limit=2&offset=1")
    assert page["data"] == [made[2], made[1]]
    assert page["pagination"] == {"total": 4, "limit": 2, "offset": 1, "has_more": True}
    assert all((c["agent"], c["persona"]) == (world.agent, world.persona) for c in page["data"])
    page = await _listed(client, tenant)
    assert ([c["name"] for c in page["data"]], page["pagination"]["has_more"]) == (
        ["c3", "c2", "c1", "c0"],
        False,
    )


async def test_list_filters_by_agent_persona_and_suite(client: Client, tenant: Tenant, world: World) -> None:
    other = await make_world(client, tenant)
    suite = await created(client, tenant, COLLECTIONS["suite"], suite_body())
    plain = await _case(client, tenant, world)
    in_suite = await _case(client, tenant, world, suite_id=suite["id"])
    mixed = await _case(client, tenant, World(world.agent, other.persona))
    elsewhere = await _case(client, tenant, other)

    async def ids(query: str) -> list[str]:
        page = await _listed(client, tenant, query)
        assert page["pagination"]["total"] == len(page["data"])
        return [c["id"] for c in page["data"]]

    assert await ids(f"agent_id={world.agent['id']}") == [mixed["id"], in_suite["id"], plain["id"]]
    assert await ids(f"persona_id={other.persona['id']}") == [elsewhere["id"], mixed["id"]]
    assert await ids(f"suite_id={suite['id']}") == [in_suite["id"]]
    assert await ids(f"agent_id={world.agent['id']}&persona_id={world.persona['id']}") == [
        in_suite["id"],
        plain["id"],
    ]
    assert await ids(f"agent_id={other.agent['id']}&suite_id={suite['id']}") == []


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "offset=-1",
        "limit=abc",
        "agent_id=x",
        "persona_id=x",
        "suite_id=x",
        "sort=name",
    ],
)
async def test_bad_list_queries_are_refused(client: Client, tenant: Tenant, query: str) -> None:
    await refused_query(client, tenant, f"{CASES}?{query}")


async def test_patch_changes_only_what_is_sent(client: Client, tenant: Tenant, world: World) -> None:
    case = await _case(client, tenant, world, description="Old", tool_allowlist=["book_slot"])
    criteria = [{"kind": "must_not_say", "phrase": "sorry?"}]
    response = await _patch(
        client,
        tenant,
        case["id"],
        {"max_turns": 5, "pass_threshold": 100, "description": None, "success_criteria": criteria},
    )
    updated = await response.json()
    assert response.status == 200, updated
    assert (updated["max_turns"], updated["pass_threshold"], updated["description"]) == (5, 100, None)
    assert updated["success_criteria"] == [
        {"type": "must_not_say", "pattern": "sorry\\?", "weight": 1.0, "description": None}
    ]
    unchanged = ("name", "scenario", "agent_id", "persona_id", "tool_policy", "tool_allowlist", "created_at")
    assert {k: updated[k] for k in unchanged} == {k: case[k] for k in unchanged}
    assert (updated["agent"], updated["persona"]) == (world.agent, world.persona)
    assert updated["updated_at"] > case["updated_at"]
    assert await (await _get(client, tenant, case["id"])).json() == updated


async def test_patch_sets_and_clears_agent_overrides_exactly(
    client: Client, tenant: Tenant, world: World
) -> None:
    case = await _case(client, tenant, world, agent_overrides={"temperature": 0.1})
    response = await _patch(client, tenant, case["id"], {"agent_overrides": {"system_prompt": "Draft"}})
    assert (response.status, (await response.json())["agent_overrides"]) == (200, {"system_prompt": "Draft"})
    response = await _patch(client, tenant, case["id"], {"agent_overrides": None})
    assert (response.status, (await response.json())["agent_overrides"]) == (200, None)


async def test_the_agent_of_a_case_cannot_change(client: Client, tenant: Tenant, world: World) -> None:
    case = await _case(client, tenant, world)
    other = await created(client, tenant, "/agents", agent_body(name="Other"))
    response = await _patch(client, tenant, case["id"], {"agent_id": other["id"], "name": "Moved"})
    await refused_field(response, "body.agent_id")
    assert await (await _get(client, tenant, case["id"])).json() == case
    response = await _patch(client, tenant, case["id"], {"agent_id": world.agent["id"], "name": "Same"})
    updated = await response.json()
    assert (response.status, updated["agent_id"], updated["name"]) == (200, world.agent["id"], "Same")


async def test_patch_can_move_a_case_to_another_persona(client: Client, tenant: Tenant, world: World) -> None:
    case = await _case(client, tenant, world)
    other = await created(client, tenant, COLLECTIONS["persona"], persona_body(name="Calm"))
    response = await _patch(client, tenant, case["id"], {"persona_id": other["id"]})
    updated = await response.json()
    assert (response.status, updated["persona_id"], updated["persona"]) == (200, other["id"], other)
    assert updated["agent"] == world.agent


@pytest.mark.parametrize("how", HOWS)
async def test_the_new_persona_must_be_live_and_the_companys(
    client: Client, tenant: Tenant, stranger: Tenant, world: World, how: str
) -> None:
    await _cannot_move_to(client, tenant, stranger, world, "persona", how)


async def test_patch_can_move_a_case_between_suites_and_out(
    client: Client, tenant: Tenant, world: World
) -> None:
    first = await created(client, tenant, COLLECTIONS["suite"], suite_body(name="First"))
    second = await created(client, tenant, COLLECTIONS["suite"], suite_body(name="Second"))
    case = await _case(client, tenant, world, suite_id=first["id"])
    response = await _patch(client, tenant, case["id"], {"suite_id": second["id"]})
    assert (response.status, (await response.json())["suite_id"]) == (200, second["id"])
    response = await _patch(client, tenant, case["id"], {"suite_id": None})
    assert (response.status, (await response.json())["suite_id"]) == (200, None)
    assert (await _listed(client, tenant, f"suite_id={second['id']}"))["data"] == []


@pytest.mark.parametrize("how", HOWS)
async def test_the_new_suite_must_be_live_and_the_companys(
    client: Client, tenant: Tenant, stranger: Tenant, world: World, how: str
) -> None:
    await _cannot_move_to(client, tenant, stranger, world, "suite", how)


async def test_a_case_whose_persona_was_deleted_reads_but_must_move_to_be_saved(
    client: Client, tenant: Tenant, world: World
) -> None:
    case = await _case(client, tenant, world)
    await deleted(client, tenant, f"{COLLECTIONS['persona']}/{world.persona['id']}")
    response = await _get(client, tenant, case["id"])
    read = await response.json()
    assert (response.status, read["persona_id"], read["persona"]["name"]) == (
        200,
        world.persona["id"],
        world.persona["name"],
    )
    assert read["persona"]["deleted_at"] is not None
    assert [c["id"] for c in (await _listed(client, tenant))["data"]] == [case["id"]]
    await not_found(await _patch(client, tenant, case["id"], {"name": "Renamed"}))
    assert await (await _get(client, tenant, case["id"])).json() == read
    live = await created(client, tenant, COLLECTIONS["persona"], persona_body(name="Live"))
    response = await _patch(client, tenant, case["id"], {"persona_id": live["id"], "name": "Renamed"})
    updated = await response.json()
    assert (response.status, updated["persona"], updated["name"]) == (200, live, "Renamed")


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"max_turns": 0}, "body.max_turns"),
        ({"max_turns": 101}, "body.max_turns"),
        ({"max_turns": None}, "body.max_turns"),
        ({"pass_threshold": -1}, "body.pass_threshold"),
        ({"pass_threshold": 101}, "body.pass_threshold"),
        ({"name": None}, "body.name"),
        ({"scenario": None}, "body.scenario"),
        ({"persona_id": None}, "body.persona_id"),
        ({"agent_id": None}, "body.agent_id"),
        ({"tool_policy": "sometimes"}, "body.tool_policy"),
        ({"tool_allowlist": None}, "body.tool_allowlist"),
        ({"success_criteria": None}, "body.success_criteria"),
        ({"success_criteria": [{"type": "must_say", "pattern": "(a"}]}, "body.success_criteria.0.pattern"),
        (
            {"success_criteria": [{"type": "must_say", "pattern": "x", "weight": 0}]},
            "body.success_criteria.0.weight",
        ),
        ({"agent_overrides": {"type": "flow"}}, "body.agent_overrides.type"),
        ({"agent_overrides": {"temperature": 3}}, "body.agent_overrides.temperature"),
        ({"nope": 1}, "body.nope"),
    ],
)
async def test_invalid_patches_are_refused_and_change_nothing(
    client: Client, tenant: Tenant, world: World, patch: Json, field: str
) -> None:
    case = await _case(client, tenant, world)
    await refused_field(await _patch(client, tenant, case["id"], patch), field)
    assert await (await _get(client, tenant, case["id"])).json() == case


async def test_delete_is_soft_and_final(
    client: Client, tenant: Tenant, world: World, database_url: str
) -> None:
    case = await _case(client, tenant, world)
    await deleted(client, tenant, f"{CASES}/{case['id']}")
    await gone(client, tenant, f"{CASES}/{case['id']}")
    await soft_deleted(database_url, "eval_cases", case["id"])
    assert (await _listed(client, tenant))["pagination"]["total"] == 0
    assert (await _listed(client, tenant, f"agent_id={world.agent['id']}"))["data"] == []


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
async def test_a_random_id_is_not_found(client: Client, tenant: Tenant, method: str) -> None:
    missing = uuid.uuid4()
    response = await client.request(method, f"{CASES}/{missing}", json={}, headers=tenant.headers())
    await not_found(response)


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
async def test_another_companys_case_looks_missing(
    client: Client, tenant: Tenant, stranger: Tenant, method: str
) -> None:
    theirs_world = await make_world(client, stranger)
    theirs = await _case(client, stranger, theirs_world)
    await looks_missing(client, tenant, method, CASES, theirs["id"])
    for query in ("", f"agent_id={theirs['agent_id']}", f"persona_id={theirs['persona_id']}"):
        assert (await _listed(client, tenant, query))["pagination"]["total"] == 0
    assert await (await _get(client, stranger, theirs["id"])).json() == theirs


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
async def test_a_bad_id_in_the_path_is_a_400(client: Client, tenant: Tenant, method: str) -> None:
    await refused_bad_path_id(client, tenant, method, CASES)


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("post", CASES, "agent_eval:create"),
        ("get", CASES, "agent_eval:read"),
        ("get", f"{CASES}/{{id}}", "agent_eval:read"),
        ("patch", f"{CASES}/{{id}}", "agent_eval:update"),
        ("delete", f"{CASES}/{{id}}", "agent_eval:delete"),
    ],
)
async def test_each_endpoint_needs_its_scope(
    client: Client,
    tenant: Tenant,
    pool: Pool,
    world: World,
    database_url: str,
    method: str,
    path: str,
    scope: str,
) -> None:
    case = await _case(client, tenant, world)
    url = path.format(id=case["id"])
    body = world.body(max_turns=7)
    await refused_without_scope(client, pool, tenant, method, url, body, scope, EVAL_SCOPES)
    assert await (await _get(client, tenant, case["id"])).json() == case
    assert await row_count(database_url, "eval_cases") == 1
    await allowed_with_scope(client, pool, tenant, method, url, body, scope)
