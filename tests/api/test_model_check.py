"""Fail fast, say why: a case run, a suite run or a re-run whose agent, persona or judge model has
no configured provider is refused 422 `MODEL_NOT_CONFIGURED` naming the model and the setting to
set, and writes nothing; scripted models and configured providers run; AGENT_EVAL_DEFAULT_MODEL
is the model of agents and personas created without one."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from pytest_aiohttp.plugin import AiohttpClient

from service.core.settings import ProviderConfig, Settings
from service.db.postgres import Pool
from service.gateway.app import create_app
from tests.support.api import Client, Json, Tenant, agent_body, created, persona_body
from tests.support.run_api import CASES, MUST_SAY_REFUND, Answer, answer, count, refused, trigger
from tests.support.scenarios import refund_case_body, scripted_agent, scripted_persona
from tests.support.suites import SUITES

# A local OpenAI-compatible server, listed without a key (nothing listens: no run executes here).
LOCAL = ProviderConfig(base_url="http://127.0.0.1:9/v1")
WRITTEN = ("eval_runs", "suite_runs", "outbox", "credit_ledger", "idempotency_keys")
JUDGED: Json = {"type": "custom_llm_judge", "rubric": "The agent is polite."}


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    """No OpenAI key and only the built-in provider, whatever the environment says."""
    return api_settings.model_copy(
        update={"openai_api_key": None, "openai_base_url": "https://api.openai.com/v1", "providers": {}}
    )


async def client_with(aiohttp_client: AiohttpClient, pool: Pool, settings: Settings, **update: Any) -> Client:
    """Another gateway on the same database, with these settings changed."""
    return await aiohttp_client(create_app(settings.model_copy(update=update), pool=pool))


async def written(pool: Pool) -> dict[str, int]:
    return {table: await count(pool, table) for table in WRITTEN}


async def case_of(client: Client, tenant: Tenant, agent: Json, persona: Json, **fields: Any) -> Json:
    made_agent = await created(client, tenant, "/agents", agent)
    made_persona = await created(client, tenant, "/agent-eval/personas", persona)
    body = refund_case_body(made_agent["id"], made_persona["id"], **fields)
    return await created(client, tenant, CASES, body)


async def run_suite(
    client: Client, tenant: Tenant, suite_id: str, path: str = "run", **headers: str
) -> Answer:
    response = await client.post(
        f"{SUITES}/{suite_id}/{path}", json={}, headers={**tenant.headers(), **headers}
    )
    return await answer(response)


def not_configured(got: Answer, *phrases: str) -> None:
    refused(got, 422, "MODEL_NOT_CONFIGURED")
    for phrase in phrases:
        assert phrase in got.body["error"], got.body


# --- case runs -----------------------------------------------------------------------------------


async def test_a_case_run_whose_agent_has_no_model_and_openai_no_key_is_422_and_writes_nothing(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    case = await case_of(client, tenant, agent_body(), scripted_persona(), success_criteria=[MUST_SAY_REFUND])
    before = await written(pool)

    got = await trigger(client, tenant, case["id"], key="k-1")

    not_configured(
        got,
        "agent model `openai:gpt-4o-mini` (from AGENT_EVAL_DEFAULT_AGENT_MODEL)",
        "set AGENT_EVAL_OPENAI_API_KEY",
    )
    assert "persona" not in got.body["error"]  # the scripted persona needs no provider
    assert await written(pool) == before


async def test_the_refusal_names_every_model_that_cannot_run(
    aiohttp_client: AiohttpClient, client: Client, tenant: Tenant, pool: Pool, api_settings: Settings
) -> None:
    judged = {"type": "custom_llm_judge", "rubric": "Polite.", "model": "local:judge"}
    with_local = await client_with(aiohttp_client, pool, api_settings, providers={"local": LOCAL})
    case = await case_of(
        with_local,
        tenant,
        agent_body(model="local:llama3"),
        persona_body(),
        success_criteria=[JUDGED, judged],
    )
    before = await written(pool)

    got = await trigger(client, tenant, case["id"])

    not_configured(
        got,
        "agent model `local:llama3` has no provider: add `local` to AGENT_EVAL_PROVIDERS",
        "persona model `openai:gpt-4o-mini` (from AGENT_EVAL_DEFAULT_PERSONA_MODEL) has no API key",
        "judge model `openai:gpt-4o-mini` (from AGENT_EVAL_JUDGE_MODEL) has no API key",
        "judge model `local:judge` has no provider",
    )
    assert await written(pool) == before


async def test_a_judge_model_without_a_provider_is_422_naming_the_provider_to_add(
    aiohttp_client: AiohttpClient, tenant: Tenant, pool: Pool, api_settings: Settings
) -> None:
    client = await client_with(aiohttp_client, pool, api_settings, judge_model="anthropic:claude-x")
    case = await case_of(client, tenant, scripted_agent(), scripted_persona(), success_criteria=[JUDGED])

    got = await trigger(client, tenant, case["id"])

    not_configured(
        got,
        "judge model `anthropic:claude-x` (from AGENT_EVAL_JUDGE_MODEL) has no provider: "
        "add `anthropic` to AGENT_EVAL_PROVIDERS",
    )
    assert await count(pool, "eval_runs") == 0


async def test_an_override_to_a_model_without_a_key_is_422(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    case = await case_of(client, tenant, scripted_agent(), scripted_persona())

    got = await trigger(client, tenant, case["id"], {"agent_overrides": {"model": "openai:gpt-4o"}})

    not_configured(got, "agent model `openai:gpt-4o` has no API key: set AGENT_EVAL_OPENAI_API_KEY")
    assert await count(pool, "eval_runs") == 0


async def test_an_empty_openai_key_counts_as_none(
    aiohttp_client: AiohttpClient, tenant: Tenant, pool: Pool, api_settings: Settings
) -> None:
    client = await client_with(aiohttp_client, pool, api_settings, openai_api_key=SecretStr(""))
    case = await case_of(client, tenant, agent_body(), scripted_persona())

    not_configured(await trigger(client, tenant, case["id"]), "set AGENT_EVAL_OPENAI_API_KEY")


# --- what runs -------------------------------------------------------------------------------------


async def test_a_scripted_case_runs_without_any_provider_or_key(client: Client, tenant: Tenant) -> None:
    case = await case_of(
        client, tenant, scripted_agent(), scripted_persona(), success_criteria=[MUST_SAY_REFUND]
    )

    got = await trigger(client, tenant, case["id"])

    assert got.status == 202, got.body
    assert (got.body["agent_model"], got.body["persona_model"]) == ("scripted", "scripted")


@pytest.mark.parametrize(
    "update",
    [
        pytest.param({"openai_api_key": SecretStr("sk-test")}, id="openai-with-a-key"),
        pytest.param({"openai_base_url": "http://127.0.0.1:11434/v1"}, id="openai-at-a-local-server"),
    ],
)
async def test_a_configured_openai_provider_passes(
    aiohttp_client: AiohttpClient, tenant: Tenant, api_settings: Settings, pool: Pool, update: dict[str, Any]
) -> None:
    client = await client_with(aiohttp_client, pool, api_settings, **update)
    case = await case_of(client, tenant, agent_body(), persona_body(), success_criteria=[JUDGED])

    got = await trigger(client, tenant, case["id"])

    assert got.status == 202, got.body
    assert (got.body["agent_model"], got.body["persona_model"]) == (
        "openai:gpt-4o-mini",
        "openai:gpt-4o-mini",
    )


async def test_a_listed_custom_provider_passes_without_a_key(
    aiohttp_client: AiohttpClient, tenant: Tenant, api_settings: Settings, pool: Pool
) -> None:
    client = await client_with(aiohttp_client, pool, api_settings, providers={"local": LOCAL})
    judged = {**JUDGED, "model": "local:judge"}
    case = await case_of(
        client, tenant, agent_body(model="local:llama3"), scripted_persona(), success_criteria=[judged]
    )

    got = await trigger(client, tenant, case["id"])

    assert got.status == 202, got.body
    assert got.body["agent_model"] == "local:llama3"


# --- AGENT_EVAL_DEFAULT_MODEL ----------------------------------------------------------------------


async def test_default_model_is_the_model_of_agents_and_personas_created_without_one(
    aiohttp_client: AiohttpClient, tenant: Tenant, api_settings: Settings, pool: Pool
) -> None:
    client = await client_with(
        aiohttp_client, pool, api_settings, providers={"local": LOCAL}, default_model="local:llama3"
    )
    case = await case_of(client, tenant, agent_body(), persona_body())

    got = await trigger(client, tenant, case["id"])

    assert got.status == 202, got.body
    assert (got.body["agent_model"], got.body["persona_model"]) == ("local:llama3", "local:llama3")


async def test_a_role_default_set_explicitly_wins_over_default_model(
    aiohttp_client: AiohttpClient, tenant: Tenant, api_settings: Settings, pool: Pool
) -> None:
    client = await client_with(
        aiohttp_client,
        pool,
        api_settings,
        providers={"local": LOCAL},
        default_model="local:llama3",
        default_persona_model="local:small",
    )
    case = await case_of(client, tenant, agent_body(), persona_body())

    got = await trigger(client, tenant, case["id"])

    assert got.status == 202, got.body
    assert (got.body["agent_model"], got.body["persona_model"]) == ("local:llama3", "local:small")


async def test_a_default_model_without_a_provider_is_refused_naming_the_setting(
    aiohttp_client: AiohttpClient, tenant: Tenant, api_settings: Settings, pool: Pool
) -> None:
    client = await client_with(aiohttp_client, pool, api_settings, default_model="anthropic:claude-x")
    case = await case_of(client, tenant, agent_body(), scripted_persona())

    not_configured(
        await trigger(client, tenant, case["id"]),
        "agent model `anthropic:claude-x` (from AGENT_EVAL_DEFAULT_MODEL) has no provider: "
        "add `anthropic` to AGENT_EVAL_PROVIDERS",
    )


# --- suite runs and re-runs ------------------------------------------------------------------------


async def test_a_suite_run_with_a_case_that_cannot_run_is_422_and_writes_nothing(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    suite = await created(client, tenant, SUITES, {"name": "Regression"})
    scripted = {"suite_id": suite["id"], "success_criteria": [MUST_SAY_REFUND]}
    await case_of(client, tenant, scripted_agent(), scripted_persona(), name="Fine", **scripted)
    for name in ("Default 1", "Default 2"):
        await case_of(client, tenant, agent_body(), scripted_persona(), name=name, suite_id=suite["id"])
    before = await written(pool)

    got = await run_suite(client, tenant, suite["id"], **{"Idempotency-Key": "s-1"})

    not_configured(got, "agent model `openai:gpt-4o-mini`", "set AGENT_EVAL_OPENAI_API_KEY")
    assert got.body["error"].count("openai:gpt-4o-mini") == 1  # named once for both cases
    assert await written(pool) == before


async def test_a_suite_of_scripted_cases_still_runs(client: Client, tenant: Tenant, pool: Pool) -> None:
    suite = await created(client, tenant, SUITES, {"name": "Regression"})
    await case_of(client, tenant, scripted_agent(), scripted_persona(), suite_id=suite["id"])

    got = await run_suite(client, tenant, suite["id"])

    assert got.status == 202, got.body
    assert await count(pool, "eval_runs") == 1


async def test_a_rerun_whose_models_lost_their_provider_is_422_and_writes_nothing(
    aiohttp_client: AiohttpClient, client: Client, tenant: Tenant, api_settings: Settings, pool: Pool
) -> None:
    with_local = await client_with(aiohttp_client, pool, api_settings, providers={"local": LOCAL})
    suite = await created(with_local, tenant, SUITES, {"name": "Regression"})
    await case_of(
        with_local, tenant, agent_body(model="local:llama3"), scripted_persona(), suite_id=suite["id"]
    )
    started = await run_suite(with_local, tenant, suite["id"])
    assert started.status == 202, started.body
    before = await written(pool)

    path = f"runs/{started.body['suite_run_id']}/rerun"
    response = await client.post(
        f"{SUITES}/{suite['id']}/{path}", json={"only": "all"}, headers=tenant.headers()
    )
    got = await answer(response)

    not_configured(got, "agent model `local:llama3` has no provider: add `local` to AGENT_EVAL_PROVIDERS")
    assert await written(pool) == before
