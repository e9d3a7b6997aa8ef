"""`/agent-eval/suites`: every endpoint's success, validation error, not found, another company's id,
missing scope."""

from __future__ import annotations

import uuid

import pytest
from aiohttp import ClientResponse

from service.db.postgres import Pool
from tests.support.api import (
    EVAL_SCOPES,
    Client,
    Json,
    Tenant,
    agent_body,
    allowed_with_scope,
    created,
    deleted,
    gone,
    listed,
    looks_missing,
    make_world,
    not_found,
    refused_bad_path_id,
    refused_field,
    refused_query,
    refused_without_scope,
    row_count,
    soft_deleted,
    suite_body,
    unusable_id,
)

SUITES = "/agent-eval/suites"


async def _suite(client: Client, tenant: Tenant, **overrides: object) -> Json:
    return await created(client, tenant, SUITES, suite_body(**overrides))


async def _agent(client: Client, tenant: Tenant) -> Json:
    return await created(client, tenant, "/agents", agent_body())


async def _get(client: Client, tenant: Tenant, suite_id: str) -> ClientResponse:
    return await client.get(f"{SUITES}/{suite_id}", headers=tenant.headers())


async def _listed(client: Client, tenant: Tenant, query: str = "") -> Json:
    return await listed(client, tenant, f"{SUITES}?{query}")


async def test_create_returns_the_suite_with_defaults(client: Client, tenant: Tenant) -> None:
    suite = await _suite(client, tenant)
    assert (suite["company_id"], suite["name"]) == (tenant.company_id, "Regression")
    assert (suite["parallelism"], suite["agent_id"], suite["description"], suite["deleted_at"]) == (
        1,
        None,
        None,
        None,
    )
    response = await _get(client, tenant, suite["id"])
    assert response.status == 200
    assert await response.json() == suite


@pytest.mark.parametrize("parallelism", [1, 16])
async def test_create_keeps_every_field_sent(client: Client, tenant: Tenant, parallelism: int) -> None:
    agent = await _agent(client, tenant)
    suite = await _suite(client, tenant, description="Nightly", agent_id=agent["id"], parallelism=parallelism)
    assert (suite["description"], suite["agent_id"], suite["parallelism"]) == (
        "Nightly",
        agent["id"],
        parallelism,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (suite_body(parallelism=0), "body.parallelism"),
        (suite_body(parallelism=17), "body.parallelism"),
        (suite_body(parallelism="2"), "body.parallelism"),
        (suite_body(parallelism=None), "body.parallelism"),
        (suite_body(name=""), "body.name"),
        ({}, "body.name"),
        (suite_body(agent_id="not-a-uuid"), "body.agent_id"),
        (suite_body(description="x" * 2001), "body.description"),
        (suite_body(frobnicate=True), "body.frobnicate"),
    ],
)
async def test_invalid_suites_are_refused_naming_the_field_and_nothing_is_written(
    client: Client, tenant: Tenant, database_url: str, body: Json, field: str
) -> None:
    response = await client.post(SUITES, json=body, headers=tenant.headers())
    await refused_field(response, field)
    assert await row_count(database_url, "eval_suites") == 0


@pytest.mark.parametrize("how", ["foreign", "deleted", "missing"])
async def test_the_default_agent_must_be_a_live_agent_of_the_company(
    client: Client, tenant: Tenant, stranger: Tenant, database_url: str, how: str
) -> None:
    agent_id = await unusable_id(client, tenant, stranger, "agent", how)
    response = await client.post(SUITES, json=suite_body(agent_id=agent_id), headers=tenant.headers())
    await not_found(response)
    assert await row_count(database_url, "eval_suites") == 0


async def test_list_is_newest_first_and_paginated(client: Client, tenant: Tenant) -> None:
    made = [await _suite(client, tenant, name=f"s{i}") for i in range(4)]
    page = await _listed(client, tenant, "limit=2&offset=1")
    assert [s["name"] for s in page["data"]] == ["s2", "s1"]
    assert page["pagination"] == {"total": 4, "limit": 2, "offset": 1, "has_more": True}
    page = await _listed(client, tenant)
    assert page["data"] == made[::-1]
    assert page["pagination"] == {"total": 4, "limit": 20, "offset": 0, "has_more": False}


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "offset=-1", "limit=abc", "agent_id=x", "sort=name"]
)
async def test_bad_list_queries_are_refused(client: Client, tenant: Tenant, query: str) -> None:
    await refused_query(client, tenant, f"{SUITES}?{query}")


async def test_patch_changes_only_what_is_sent(client: Client, tenant: Tenant) -> None:
    agent = await _agent(client, tenant)
    suite = await _suite(client, tenant, description="Old", agent_id=agent["id"])
    response = await client.patch(
        f"{SUITES}/{suite['id']}", json={"parallelism": 16, "description": None}, headers=tenant.headers()
    )
    updated = await response.json()
    assert response.status == 200, updated
    assert (updated["parallelism"], updated["description"]) == (16, None)
    assert (updated["name"], updated["agent_id"], updated["created_at"]) == (
        "Regression",
        agent["id"],
        suite["created_at"],
    )
    assert updated["updated_at"] > suite["updated_at"]
    assert await (await _get(client, tenant, suite["id"])).json() == updated


async def test_patch_can_change_or_clear_the_default_agent(client: Client, tenant: Tenant) -> None:
    first, second = await _agent(client, tenant), await _agent(client, tenant)
    suite = await _suite(client, tenant, agent_id=first["id"])
    url = f"{SUITES}/{suite['id']}"
    response = await client.patch(url, json={"agent_id": second["id"]}, headers=tenant.headers())
    assert (response.status, (await response.json())["agent_id"]) == (200, second["id"])
    response = await client.patch(url, json={"agent_id": None}, headers=tenant.headers())
    assert (response.status, (await response.json())["agent_id"]) == (200, None)


@pytest.mark.parametrize("how", ["foreign", "deleted", "missing"])
async def test_patching_the_default_agent_checks_it_again(
    client: Client, tenant: Tenant, stranger: Tenant, how: str
) -> None:
    suite = await _suite(client, tenant)
    agent_id = await unusable_id(client, tenant, stranger, "agent", how)
    response = await client.patch(
        f"{SUITES}/{suite['id']}", json={"agent_id": agent_id}, headers=tenant.headers()
    )
    await not_found(response)
    assert await (await _get(client, tenant, suite["id"])).json() == suite


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"parallelism": 0}, "body.parallelism"),
        ({"parallelism": 17}, "body.parallelism"),
        ({"parallelism": None}, "body.parallelism"),
        ({"name": None}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"agent_id": "x"}, "body.agent_id"),
        ({"nope": 1}, "body.nope"),
    ],
)
async def test_invalid_patches_are_refused_and_change_nothing(
    client: Client, tenant: Tenant, patch: Json, field: str
) -> None:
    suite = await _suite(client, tenant)
    response = await client.patch(f"{SUITES}/{suite['id']}", json=patch, headers=tenant.headers())
    await refused_field(response, field)
    assert await (await _get(client, tenant, suite["id"])).json() == suite


async def test_delete_is_soft_and_final(client: Client, tenant: Tenant, database_url: str) -> None:
    suite = await _suite(client, tenant)
    await deleted(client, tenant, f"{SUITES}/{suite['id']}")
    await gone(client, tenant, f"{SUITES}/{suite['id']}")
    await soft_deleted(database_url, "eval_suites", suite["id"])
    assert (await _listed(client, tenant))["pagination"]["total"] == 0


async def test_deleting_a_suite_keeps_its_cases_in_it(client: Client, tenant: Tenant) -> None:
    world = await make_world(client, tenant)
    suite = await _suite(client, tenant)
    case = await created(client, tenant, "/agent-eval/cases", world.body(suite_id=suite["id"]))
    await deleted(client, tenant, f"{SUITES}/{suite['id']}")
    response = await client.get(f"/agent-eval/cases/{case['id']}", headers=tenant.headers())
    assert (response.status, (await response.json())["suite_id"]) == (200, suite["id"])
    response = await client.get(f"/agent-eval/cases?suite_id={suite['id']}", headers=tenant.headers())
    assert [c["id"] for c in (await response.json())["data"]] == [case["id"]]


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
async def test_a_random_id_is_not_found(client: Client, tenant: Tenant, method: str) -> None:
    missing = uuid.uuid4()
    response = await client.request(method, f"{SUITES}/{missing}", json={}, headers=tenant.headers())
    await not_found(response)


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
async def test_another_companys_suite_looks_missing(
    client: Client, tenant: Tenant, stranger: Tenant, method: str
) -> None:
    theirs = await _suite(client, stranger)
    await looks_missing(client, tenant, method, SUITES, theirs["id"])
    assert (await _listed(client, tenant))["pagination"]["total"] == 0
    assert await (await _get(client, stranger, theirs["id"])).json() == theirs


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
async def test_a_bad_id_in_the_path_is_a_400(client: Client, tenant: Tenant, method: str) -> None:
    await refused_bad_path_id(client, tenant, method, SUITES)


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("post", SUITES, "agent_eval:create"),
        ("get", SUITES, "agent_eval:read"),
        ("get", f"{SUITES}/{{id}}", "agent_eval:read"),
        ("patch", f"{SUITES}/{{id}}", "agent_eval:update"),
        ("delete", f"{SUITES}/{{id}}", "agent_eval:delete"),
    ],
)
async def test_each_endpoint_needs_its_scope(
    client: Client, tenant: Tenant, pool: Pool, database_url: str, method: str, path: str, scope: str
) -> None:
    suite = await _suite(client, tenant)
    url = path.format(id=suite["id"])
    body = suite_body(parallelism=2)
    await refused_without_scope(client, pool, tenant, method, url, body, scope, EVAL_SCOPES)
    assert await (await _get(client, tenant, suite["id"])).json() == suite
    assert await row_count(database_url, "eval_suites") == 1
    await allowed_with_scope(client, pool, tenant, method, url, body, scope)
