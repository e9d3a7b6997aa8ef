"""Agents of `"type": "http"` through the API: created with an endpoint whose secrets are sealed
and shown as `***`, kept or replaced on PATCH, refused naming the field when the endpoint does
not fit the type or the outbound policy, overridden per case and per run without secrets, and
triggered without a model provider for the agent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr
from pytest_aiohttp.plugin import AiohttpClient

from service.core.sealing import SecretBox
from service.core.settings import Settings
from service.db.postgres import Pool
from service.gateway.app import create_app
from tests.support.api import Client, Json, Tenant, agent_body, created, first_row, refused_field, row_count
from tests.support.live import TEST_WEBHOOK_KEY
from tests.support.run_api import CASES, refused, trigger
from tests.support.scenarios import refund_case_body, scripted_persona

URL = "https://agent.example.com/chat"
SECRET = "sk-live-PLAIN-abcdef"
AUTH = {"Authorization": "Bearer {{secrets.API_KEY}}"}


def endpoint(**fields: Any) -> Json:
    return {"url": URL, "format": "simple", **fields}


def http_body(**fields: Any) -> Json:
    body: Json = {
        "name": "Their bot",
        "type": "http",
        "endpoint": endpoint(headers=AUTH, secrets={"API_KEY": SECRET}),
    }
    body.update(fields)
    return body


async def client_with(aiohttp_client: AiohttpClient, pool: Pool, settings: Settings, **update: Any) -> Client:
    """Another gateway on the same database, with these settings changed."""
    return await aiohttp_client(create_app(settings.model_copy(update=update), pool=pool))


async def stored_secrets(database_url: str) -> dict[str, str]:
    """The agent row's secrets, opened (the row holds them sealed, never in plain)."""
    row = await first_row(database_url, "SELECT extra_fields::text AS extra FROM agents")
    assert row is not None
    assert SECRET not in row["extra"]
    sealed: dict[str, str] = json.loads(row["extra"])["endpoint"]["secrets"]
    box = SecretBox([TEST_WEBHOOK_KEY])
    return {name: box.open(value) for name, value in sealed.items()}


async def sealed_row(database_url: str) -> str:
    row = await first_row(
        database_url, "SELECT extra_fields -> 'endpoint' -> 'secrets' ->> 'API_KEY' AS v FROM agents"
    )
    assert row is not None
    value: str = row["v"]
    return value


async def patched(client: Client, tenant: Tenant, agent_id: str, body: Json) -> Json:
    response = await client.patch(f"/agents/{agent_id}", json=body, headers=tenant.headers())
    payload: Json = await response.json()
    assert response.status == 200, payload
    return payload


# --- create and read --------------------------------------------------------------------------------


async def test_an_http_agent_is_stored_with_its_secrets_sealed_and_shown_as_stars(
    client: Client, tenant: Tenant, database_url: str
) -> None:
    agent = await created(
        client,
        tenant,
        "/agents",
        http_body(endpoint=endpoint(headers=AUTH, secrets={"API_KEY": SECRET}, model="acme")),
    )
    assert (agent["type"], agent["system_prompt"]) == ("http", "")
    assert agent["endpoint"] == {
        "url": URL,
        "format": "simple",
        "headers": AUTH,
        "timeout_secs": 30,
        "model": "acme",
        "secrets": {"API_KEY": "***"},
    }
    response = await client.get(f"/agents/{agent['id']}", headers=tenant.headers())
    assert await response.json() == agent
    listed = await (await client.get("/agents?type=http", headers=tenant.headers())).json()
    assert [a["id"] for a in listed["data"]] == [agent["id"]]
    assert SECRET not in json.dumps(listed)
    assert await stored_secrets(database_url) == {"API_KEY": SECRET}


async def test_prompt_agents_have_no_endpoint_in_their_answers(client: Client, tenant: Tenant) -> None:
    agent = await created(client, tenant, "/agents", agent_body())
    assert agent["endpoint"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "type": "http"}, "body.endpoint"),
        (agent_body(endpoint=endpoint()), "body.endpoint"),
        ({"name": "No prompt"}, "body.system_prompt"),
        (http_body(endpoint=endpoint(url="http://127.0.0.1:8000/agent")), "body.endpoint.url"),
        (http_body(endpoint=endpoint(url="https://127.0.0.1/agent")), "body.endpoint.url"),
        (http_body(endpoint=endpoint(url="https://10.0.3.7/agent")), "body.endpoint.url"),
        (http_body(endpoint=endpoint(url="https://[::ffff:169.254.169.254]/agent")), "body.endpoint.url"),
        (http_body(endpoint=endpoint(url="http://agent.example.com/chat")), "body.endpoint.url"),
        (http_body(endpoint=endpoint(url="ftp://agent.example.com/chat")), "body.endpoint.url"),
        (http_body(endpoint=endpoint(headers=AUTH)), "body.endpoint.headers.Authorization"),
        (
            http_body(endpoint=endpoint(headers={"X-Session-Id": "mine"})),
            "body.endpoint.headers.X-Session-Id",
        ),
        (http_body(endpoint=endpoint(headers={"X-A": "one\r\nX-B: two"})), "body.endpoint.headers.X-A"),
        (http_body(endpoint=endpoint(secrets={"API_KEY": "***"})), "body.endpoint.secrets.API_KEY"),
        (http_body(endpoint=endpoint(secrets={"API_KEY": "x" * 2049})), "body.endpoint.secrets.API_KEY"),
        (http_body(endpoint=endpoint(secrets={"bad name": "x"})), "body.endpoint.secrets.bad name"),
        (http_body(endpoint=endpoint(format="xml")), "body.endpoint.format"),
        (http_body(endpoint={"url": URL}), "body.endpoint.format"),
        (http_body(endpoint=endpoint(timeout_secs=0)), "body.endpoint.timeout_secs"),
        (http_body(endpoint=endpoint(timeout_secs=301)), "body.endpoint.timeout_secs"),
        (http_body(endpoint=endpoint(extra=1)), "body.endpoint.extra"),
        (http_body(flow_config={"nodes": []}), "body"),
    ],
)
async def test_an_endpoint_that_does_not_fit_is_refused_naming_the_field_and_nothing_is_written(
    client: Client, tenant: Tenant, database_url: str, body: Json, field: str
) -> None:
    response = await client.post("/agents", json=body, headers=tenant.headers())
    await refused_field(response, field)
    assert await row_count(database_url, "agents") == 0


async def test_a_refused_url_says_how_an_operator_can_allow_it(client: Client, tenant: Tenant) -> None:
    response = await client.post(
        "/agents", json=http_body(endpoint=endpoint(url="https://10.0.3.7/agent")), headers=tenant.headers()
    )
    body = await refused_field(response, "body.endpoint.url")
    assert body["fields"][0]["message"] == (
        "10.0.3.7 is a private address "
        "(an operator can allow private agents with AGENT_EVAL_AGENT_ALLOWED_NETWORKS)"
    )


async def test_allowed_networks_let_agents_reach_private_hosts_over_plain_http(
    aiohttp_client: AiohttpClient, pool: Pool, api_settings: Settings, tenant: Tenant
) -> None:
    client = await client_with(
        aiohttp_client, pool, api_settings, agent_allowed_networks="127.0.0.1/32, 10.0.3.0/24, agent.internal"
    )
    for url in ("http://127.0.0.1:9000/agent", "http://10.0.3.7/agent", "http://agent.internal:8080/chat"):
        await created(client, tenant, "/agents", http_body(endpoint=endpoint(url=url)))
    response = await client.post(
        "/agents", json=http_body(endpoint=endpoint(url="http://10.0.4.1/agent")), headers=tenant.headers()
    )
    await refused_field(response, "body.endpoint.url")


async def test_secrets_cannot_be_stored_without_the_sealing_keys(
    aiohttp_client: AiohttpClient, pool: Pool, api_settings: Settings, tenant: Tenant
) -> None:
    client = await client_with(aiohttp_client, pool, api_settings, webhook_secret_keys=None)
    response = await client.post("/agents", json=http_body(), headers=tenant.headers())
    body = await response.json()
    assert (response.status, body["code"]) == (503, "NOT_CONFIGURED")
    assert "AGENT_EVAL_WEBHOOK_SECRET_KEYS is not set" in body["error"]
    await created(client, tenant, "/agents", http_body(endpoint=endpoint()))  # no secrets: no keys needed


# --- PATCH -------------------------------------------------------------------------------------------


async def test_patch_keeps_a_secret_sent_as_stars_and_seals_a_new_one(
    client: Client, tenant: Tenant, database_url: str
) -> None:
    agent = await created(client, tenant, "/agents", http_body())
    first = await sealed_row(database_url)
    shown = await patched(client, tenant, agent["id"], {"name": "Renamed"})
    assert shown["endpoint"] == agent["endpoint"]
    assert await sealed_row(database_url) == first  # untouched, not re-sealed
    staging = {**agent["endpoint"], "url": "https://staging.example.com/chat"}  # as GET showed it: "***"
    shown = await patched(client, tenant, agent["id"], {"endpoint": staging})
    assert shown["endpoint"]["url"] == "https://staging.example.com/chat"
    assert await sealed_row(database_url) == first
    rotated = {**staging, "secrets": {"API_KEY": "sk-live-NEW", "OTHER": "two"}}
    shown = await patched(client, tenant, agent["id"], {"endpoint": rotated})
    assert shown["endpoint"]["secrets"] == {"API_KEY": "***", "OTHER": "***"}
    assert await stored_secrets(database_url) == {"API_KEY": "sk-live-NEW", "OTHER": "two"}


async def test_patch_of_an_endpoint_without_secrets_keeps_every_stored_one(
    client: Client, tenant: Tenant, database_url: str
) -> None:
    agent = await created(client, tenant, "/agents", http_body())
    shown = await patched(client, tenant, agent["id"], {"endpoint": endpoint(headers=AUTH, timeout_secs=5)})
    assert (shown["endpoint"]["timeout_secs"], shown["endpoint"]["secrets"]) == (5, {"API_KEY": "***"})
    assert await stored_secrets(database_url) == {"API_KEY": SECRET}
    cleared = await patched(client, tenant, agent["id"], {"endpoint": endpoint(secrets={})})
    assert cleared["endpoint"]["secrets"] == {}


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        (
            {"endpoint": endpoint(headers=AUTH, secrets={"API_KEY": "***", "NEW": "***"})},
            "body.endpoint.secrets.NEW",
        ),
        (
            {"endpoint": endpoint(headers={"Authorization": "{{secrets.MISSING}}"})},
            "body.endpoint.headers.Authorization",
        ),
        ({"endpoint": None}, "body.endpoint"),
        ({"type": "prompt"}, "body.type"),
        ({"endpoint": endpoint(url="https://127.0.0.1/x")}, "body.endpoint.url"),
    ],
)
async def test_invalid_patches_of_an_http_agent_change_nothing(
    client: Client, tenant: Tenant, database_url: str, patch: Json, field: str
) -> None:
    agent = await created(client, tenant, "/agents", http_body())
    first = await sealed_row(database_url)
    response = await client.patch(f"/agents/{agent['id']}", json=patch, headers=tenant.headers())
    await refused_field(response, field)
    assert await (await client.get(f"/agents/{agent['id']}", headers=tenant.headers())).json() == agent
    assert await sealed_row(database_url) == first


async def test_a_prompt_agent_cannot_become_http_or_take_an_endpoint(client: Client, tenant: Tenant) -> None:
    agent = await created(client, tenant, "/agents", agent_body())
    for patch, field in (({"type": "http"}, "body.type"), ({"endpoint": endpoint()}, "body.endpoint")):
        response = await client.patch(f"/agents/{agent['id']}", json=patch, headers=tenant.headers())
        await refused_field(response, field)


# --- overrides and triggers ----------------------------------------------------------------------------


async def http_world(client: Client, tenant: Tenant, agent: Json | None = None) -> tuple[Json, Json]:
    made_agent = await created(client, tenant, "/agents", agent or http_body())
    persona = await created(client, tenant, "/agent-eval/personas", scripted_persona())
    return made_agent, persona


async def test_an_override_cannot_carry_secrets(client: Client, tenant: Tenant) -> None:
    agent, persona = await http_world(client, tenant)
    overrides = {"endpoint": endpoint(secrets={"API_KEY": "other"})}
    body = refund_case_body(agent["id"], persona["id"], agent_overrides=overrides)
    response = await client.post(CASES, json=body, headers=tenant.headers())
    refusal = await refused_field(response, "body.agent_overrides.endpoint")
    assert "secrets live on the agent" in refusal["fields"][0]["message"]


async def test_a_case_points_an_http_agent_elsewhere_keeping_the_agents_secrets(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    agent, persona = await http_world(client, tenant)
    staging = endpoint(url="https://staging.example.com/chat", headers=AUTH)
    body = refund_case_body(agent["id"], persona["id"], agent_overrides={"endpoint": staging})
    case = await created(client, tenant, CASES, body)
    assert case["agent_overrides"]["endpoint"]["url"] == "https://staging.example.com/chat"
    got = await trigger(client, tenant, case["id"])
    assert got.status == 202, got.body
    merged = got.body["case"]["agent"]["endpoint"]
    assert (merged["url"], merged["secrets"]) == ("https://staging.example.com/chat", {"API_KEY": "***"})
    async with pool.acquire() as conn:
        config = await conn.fetchval("SELECT config::text FROM eval_runs")
    assert SECRET not in config
    sealed = json.loads(config)["case"]["agent"]["endpoint"]["secrets"]["API_KEY"]
    assert SecretBox([TEST_WEBHOOK_KEY]).open(sealed) == SECRET


@pytest.mark.parametrize(
    ("agent", "overrides", "message"),
    [
        (agent_body(), {"endpoint": endpoint()}, "only http agents have an endpoint (a prompt agent)"),
        (
            None,
            {"endpoint": endpoint(headers={"Authorization": "{{secrets.NOPE}}"})},
            "uses secret 'NOPE', which the agent does not have",
        ),
        (None, {"endpoint": None}, "an http agent needs an endpoint"),
    ],
)
async def test_a_run_override_the_agent_cannot_take_is_refused(
    client: Client, tenant: Tenant, agent: Json | None, overrides: Json, message: str
) -> None:
    made_agent, persona = await http_world(client, tenant, agent)
    case = await created(client, tenant, CASES, refund_case_body(made_agent["id"], persona["id"]))
    got = await trigger(client, tenant, case["id"], {"agent_overrides": overrides})
    refused(got, 400, "VALIDATION_ERROR")
    assert [f["message"] for f in got.body["fields"]] == [message]
    assert got.body["fields"][0]["field"].startswith("body.agent_overrides.endpoint")


async def test_an_http_agent_runs_without_a_model_provider_while_the_persona_still_needs_one(
    aiohttp_client: AiohttpClient, pool: Pool, api_settings: Settings, tenant: Tenant
) -> None:
    client = await client_with(
        aiohttp_client,
        pool,
        api_settings,
        openai_api_key=None,
        openai_base_url="https://api.openai.com/v1",
        providers={},
        webhook_secret_keys=SecretStr(TEST_WEBHOOK_KEY),
    )
    agent, persona = await http_world(client, tenant)
    case = await created(client, tenant, CASES, refund_case_body(agent["id"], persona["id"]))
    assert (await trigger(client, tenant, case["id"])).status == 202
    talker = await created(client, tenant, "/agent-eval/personas", scripted_persona(model="openai:gpt-4o"))
    case = await created(client, tenant, CASES, refund_case_body(agent["id"], talker["id"]))
    got = await trigger(client, tenant, case["id"])
    refused(got, 422, "MODEL_NOT_CONFIGURED")
    assert "persona model `openai:gpt-4o`" in got.body["error"]
    assert "agent model" not in got.body["error"]
