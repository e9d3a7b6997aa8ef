"""`/agent-eval/personas`: every endpoint's success, validation error, not found, another company's id,
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
    allowed_with_scope,
    created,
    deleted,
    gone,
    listed,
    looks_missing,
    not_found,
    persona_body,
    refused_bad_path_id,
    refused_field,
    refused_query,
    refused_without_scope,
    row_count,
    soft_deleted,
)

PERSONAS = "/agent-eval/personas"


async def _persona(client: Client, tenant: Tenant, **overrides: object) -> Json:
    return await created(client, tenant, PERSONAS, persona_body(**overrides))


async def _get(client: Client, tenant: Tenant, persona_id: str) -> ClientResponse:
    return await client.get(f"{PERSONAS}/{persona_id}", headers=tenant.headers())


async def _listed(client: Client, tenant: Tenant, query: str = "") -> Json:
    return await listed(client, tenant, f"{PERSONAS}?{query}")


async def test_create_returns_the_persona_with_defaults(client: Client, tenant: Tenant) -> None:
    persona = await _persona(client, tenant)
    assert persona["company_id"] == tenant.company_id
    assert (persona["name"], persona["identity_prompt"]) == (
        "Frustrated tenant",
        "You are a tenant whose heating broke.",
    )
    assert (persona["language"], persona["behavior_traits"], persona["voice_config"]) == ("en", {}, {})
    assert (persona["description"], persona["model"], persona["script"], persona["deleted_at"]) == (
        None,
        None,
        None,
        None,
    )
    response = await _get(client, tenant, persona["id"])
    assert response.status == 200
    assert await response.json() == persona


async def test_create_keeps_every_field_sent(client: Client, tenant: Tenant) -> None:
    traits = {"patience": "low", "verbosity": "chatty"}
    persona = await _persona(
        client,
        tenant,
        description="Angry about the boiler",
        behavior_traits=traits,
        language="he",
        voice_config={"voice": "Rachel"},
        model="openai:gpt-4o",
    )
    assert (persona["description"], persona["behavior_traits"], persona["language"]) == (
        "Angry about the boiler",
        traits,
        "he",
    )
    assert (persona["voice_config"], persona["model"]) == ({"voice": "Rachel"}, "openai:gpt-4o")


async def test_a_scripted_persona_keeps_its_script_in_order(client: Client, tenant: Tenant) -> None:
    persona = await _persona(client, tenant, model="scripted", script=["Hi", "My heating broke", "Thanks"])
    assert (persona["model"], persona["script"]) == ("scripted", ["Hi", "My heating broke", "Thanks"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (persona_body(model="scripted"), "body.script"),
        (persona_body(model="scripted", script=None), "body.script"),
        (persona_body(model="scripted", script=[]), "body.script"),
        (persona_body(script=[]), "body.script"),
        (persona_body(model="scripted", script=["Hi", ""]), "body.script.1"),
        (persona_body(model="nope:x"), "body.model"),
        (persona_body(model="gpt-4o"), "body.model"),
        (persona_body(name=""), "body.name"),
        (persona_body(name=None), "body.name"),
        ({"name": "Only a name"}, "body.identity_prompt"),
        (persona_body(identity_prompt=""), "body.identity_prompt"),
        (persona_body(language="english"), "body.language"),
        (persona_body(behavior_traits=["low"]), "body.behavior_traits"),
        (persona_body(voice_config="Rachel"), "body.voice_config"),
        (persona_body(description="x" * 2001), "body.description"),
        (persona_body(frobnicate=True), "body.frobnicate"),
    ],
)
async def test_invalid_personas_are_refused_naming_the_field_and_nothing_is_written(
    client: Client, tenant: Tenant, database_url: str, body: Json, field: str
) -> None:
    response = await client.post(PERSONAS, json=body, headers=tenant.headers())
    await refused_field(response, field)
    assert await row_count(database_url, "eval_personas") == 0


async def test_a_scripted_persona_without_a_script_says_why(client: Client, tenant: Tenant) -> None:
    response = await client.post(PERSONAS, json=persona_body(model="scripted"), headers=tenant.headers())
    body = await refused_field(response, "body.script")
    assert "script" in body["fields"][0]["message"]


async def test_list_is_sorted_by_name_and_paginated(client: Client, tenant: Tenant) -> None:
    for name in ("Delta", "Bravo", "Alpha", "Charlie"):
        await _persona(client, tenant, name=name)
    page = await _listed(client, tenant, "limit=2&offset=1")
    assert [p["name"] for p in page["data"]] == ["Bravo", "Charlie"]
    assert page["pagination"] == {"total": 4, "limit": 2, "offset": 1, "has_more": True}
    page = await _listed(client, tenant)
    assert [p["name"] for p in page["data"]] == ["Alpha", "Bravo", "Charlie", "Delta"]
    assert page["pagination"] == {"total": 4, "limit": 20, "offset": 0, "has_more": False}
    page = await _listed(client, tenant, "offset=3")
    assert ([p["name"] for p in page["data"]], page["pagination"]["has_more"]) == (["Delta"], False)


async def test_list_items_are_whole_personas(client: Client, tenant: Tenant) -> None:
    persona = await _persona(client, tenant, behavior_traits={"goal": "refund"})
    assert (await _listed(client, tenant))["data"] == [persona]


async def test_list_filters_by_language(client: Client, tenant: Tenant) -> None:
    hebrew = await _persona(client, tenant, name="Dana", language="he")
    english = await _persona(client, tenant, name="Bob")
    page = await _listed(client, tenant, "language=he")
    assert ([p["id"] for p in page["data"]], page["pagination"]["total"]) == ([hebrew["id"]], 1)
    page = await _listed(client, tenant, "language=en")
    assert [p["id"] for p in page["data"]] == [english["id"]]
    page = await _listed(client, tenant, "language=fr")
    assert page == {"data": [], "pagination": {"total": 0, "limit": 20, "offset": 0, "has_more": False}}


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "offset=-1", "limit=abc", "language=english", "sort=name"]
)
async def test_bad_list_queries_are_refused(client: Client, tenant: Tenant, query: str) -> None:
    await refused_query(client, tenant, f"{PERSONAS}?{query}")


async def test_patch_changes_only_what_is_sent(client: Client, tenant: Tenant) -> None:
    persona = await _persona(client, tenant, description="Old", voice_config={"voice": "Rachel"})
    response = await client.patch(
        f"{PERSONAS}/{persona['id']}",
        json={"behavior_traits": {"patience": "low"}, "language": "he", "description": None},
        headers=tenant.headers(),
    )
    updated = await response.json()
    assert response.status == 200, updated
    assert (updated["behavior_traits"], updated["language"], updated["description"]) == (
        {"patience": "low"},
        "he",
        None,
    )
    unchanged = ("id", "name", "identity_prompt", "voice_config", "model", "script", "created_at")
    assert {k: updated[k] for k in unchanged} == {k: persona[k] for k in unchanged}
    assert updated["updated_at"] > persona["updated_at"]
    assert await (await _get(client, tenant, persona["id"])).json() == updated


async def test_patch_can_make_a_persona_scripted_when_it_sends_a_script(
    client: Client, tenant: Tenant
) -> None:
    persona = await _persona(client, tenant)
    response = await client.patch(
        f"{PERSONAS}/{persona['id']}", json={"model": "scripted", "script": ["Hi"]}, headers=tenant.headers()
    )
    updated = await response.json()
    assert (response.status, updated["model"], updated["script"]) == (200, "scripted", ["Hi"])


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"name": None}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"identity_prompt": None}, "body.identity_prompt"),
        ({"language": None}, "body.language"),
        ({"behavior_traits": None}, "body.behavior_traits"),
        ({"voice_config": None}, "body.voice_config"),
        ({"model": "nope:x"}, "body.model"),
        ({"model": "scripted"}, "body.script"),
        ({"script": []}, "body.script"),
        ({"nope": 1}, "body.nope"),
    ],
)
async def test_invalid_patches_are_refused_and_change_nothing(
    client: Client, tenant: Tenant, patch: Json, field: str
) -> None:
    persona = await _persona(client, tenant)
    response = await client.patch(f"{PERSONAS}/{persona['id']}", json=patch, headers=tenant.headers())
    await refused_field(response, field)
    assert await (await _get(client, tenant, persona["id"])).json() == persona


async def test_a_scripted_persona_cannot_lose_its_script(client: Client, tenant: Tenant) -> None:
    persona = await _persona(client, tenant, model="scripted", script=["Hi"])
    response = await client.patch(
        f"{PERSONAS}/{persona['id']}", json={"script": None}, headers=tenant.headers()
    )
    await refused_field(response, "body.script")
    assert await (await _get(client, tenant, persona["id"])).json() == persona


async def test_delete_is_soft_and_final(client: Client, tenant: Tenant, database_url: str) -> None:
    persona = await _persona(client, tenant)
    await deleted(client, tenant, f"{PERSONAS}/{persona['id']}")
    await gone(client, tenant, f"{PERSONAS}/{persona['id']}")
    await soft_deleted(database_url, "eval_personas", persona["id"])
    assert (await _listed(client, tenant))["pagination"]["total"] == 0


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
async def test_a_random_id_is_not_found(client: Client, tenant: Tenant, method: str) -> None:
    missing = uuid.uuid4()
    response = await client.request(method, f"{PERSONAS}/{missing}", json={}, headers=tenant.headers())
    body = await not_found(response)
    assert str(missing) in body["error"]


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
async def test_another_companys_persona_looks_missing(
    client: Client, tenant: Tenant, stranger: Tenant, method: str
) -> None:
    theirs = await _persona(client, stranger)
    await looks_missing(client, tenant, method, PERSONAS, theirs["id"])
    assert (await _listed(client, tenant))["pagination"]["total"] == 0
    assert await (await _get(client, stranger, theirs["id"])).json() == theirs


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
async def test_a_bad_id_in_the_path_is_a_400(client: Client, tenant: Tenant, method: str) -> None:
    await refused_bad_path_id(client, tenant, method, PERSONAS)


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("post", PERSONAS, "agent_eval:create"),
        ("get", PERSONAS, "agent_eval:read"),
        ("get", f"{PERSONAS}/{{id}}", "agent_eval:read"),
        ("patch", f"{PERSONAS}/{{id}}", "agent_eval:update"),
        ("delete", f"{PERSONAS}/{{id}}", "agent_eval:delete"),
    ],
)
async def test_each_endpoint_needs_its_scope(
    client: Client, tenant: Tenant, pool: Pool, database_url: str, method: str, path: str, scope: str
) -> None:
    persona = await _persona(client, tenant)
    url = path.format(id=persona["id"])
    await refused_without_scope(client, pool, tenant, method, url, persona_body(), scope, EVAL_SCOPES)
    assert await (await _get(client, tenant, persona["id"])).json() == persona
    assert await row_count(database_url, "eval_personas") == 1
    await allowed_with_scope(client, pool, tenant, method, url, persona_body(), scope)
