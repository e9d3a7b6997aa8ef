"""Agents of `"type": "http"` run end to end: created over the API, played by the in-process
pipeline against a real agent server on 127.0.0.1 (reached because
AGENT_EVAL_AGENT_ALLOWED_NETWORKS lists it, with WEBHOOK_ALLOW_PRIVATE off), scored and billed.
Both formats, a session that keeps context, reported tool calls judged by `must_call_tool`,
usage priced or free, secrets sent but never shown, and every way the agent can fail the run."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from pytest_aiohttp.plugin import AiohttpClient

from consumers.executor.http_agent import HttpAgentCaller
from schemas.agents import Agent
from schemas.events import decode_event
from schemas.rates import DEFAULT_RATE_CARD, RolePrices
from schemas.runs import RunConfig
from service.core.errors import ProviderError
from service.core.sealing import SecretBox
from service.core.settings import Settings
from service.db.postgres import Pool, connection
from service.domain.transcript import TranscriptTurn
from service.gateway.app import create_app
from service.runs.views import run_view
from service.webhooks.payloads import event_payload
from tests.support.agent_server import AgentServer, agent_server
from tests.support.api import Client, Json, Tenant, created
from tests.support.live import TEST_WEBHOOK_KEY
from tests.support.run_api import CASES, get_run, running_pipeline, trigger
from tests.support.scenarios import read_run, refund_case_body, scripted_agent, scripted_persona

SCRIPT = ("Hi, my name is Dana", "I want a refund for order A-1", "Do you remember my name?", "Thanks, bye")
CRITERIA: list[Json] = [
    {"type": "must_say", "pattern": "your name is dana"},
    {"type": "must_call_tool", "tool_name": "start_refund", "args_match": {"order": "A-1"}},
]
PLAIN_SECRET = "sk-live-PLAIN-0123456789"
# Agent tokens priced high enough to show in whole cents.
CARD = DEFAULT_RATE_CARD.model_copy(
    update={
        "version": "http-agents",
        "agent": RolePrices(
            input_cents_per_million=Decimal(2_000_000), output_cents_per_million=Decimal(4_000_000)
        ),
    }
)


@pytest.fixture
def agent_settings(settings: Settings) -> Settings:
    """Private targets refused, except 127.0.0.1, opened to agent calls only."""
    return settings.model_copy(
        update={"webhook_allow_private": False, "agent_allowed_networks": "127.0.0.1/32", "rate_card": CARD}
    )


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, agent_settings: Settings, pool: Pool) -> Client:
    return await aiohttp_client(create_app(agent_settings, pool=pool))


@pytest.fixture
async def server() -> AsyncIterator[AgentServer]:
    async with agent_server() as running:
        yield running


def http_agent(url: str, format_: str = "simple", **endpoint: Any) -> Json:
    return {"name": "Their bot", "type": "http", "endpoint": {"url": url, "format": format_, **endpoint}}


async def http_case(client: Client, tenant: Tenant, agent: Json, **case: Any) -> Json:
    made_agent = await created(client, tenant, "/agents", agent)
    persona = await created(client, tenant, "/agent-eval/personas", scripted_persona(SCRIPT))
    body = refund_case_body(made_agent["id"], persona["id"], success_criteria=CRITERIA, **case)
    return await created(client, tenant, CASES, body)


async def played(
    client: Client, tenant: Tenant, settings: Settings, pool: Pool, agent: Json, **case: Any
) -> Json:
    """Create the case, run it to done with the pipeline; the run as GET returns it."""
    made = await http_case(client, tenant, agent, **case)
    async with running_pipeline(settings, pool):
        got = await trigger(client, tenant, made["id"], prefer="wait=60")
    assert (got.status, got.body["queue_status"]) == (200, "done"), got.body
    return got.body


async def turns(client: Client, tenant: Tenant, run_id: str) -> list[Json]:
    response = await client.get(f"/agent-eval/runs/{run_id}/turns", headers=tenant.headers())
    assert response.status == 200
    rows: list[Json] = (await response.json())["data"]
    return rows


def failed_with(run: Json, code: str) -> str:
    assert (run["status"], run["termination_reason"], run["error_code"]) == ("failed", "error", code), run
    error: str = run["error"]
    return error


# --- conversations that work ----------------------------------------------------------------


async def test_a_simple_agent_keeps_its_session_and_its_reported_tool_call_passes_must_call_tool(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    run = await played(client, tenant, agent_settings, pool, http_agent(f"{server.url}/simple"))
    assert (run["status"], run["termination_reason"], run["pass_fail"], run["score"]) == (
        "completed",
        "agent_ended",
        True,
        100.0,
    )
    reasons = [r["reason"] for r in run["evaluation"]["results"]]
    assert reasons[1] == "fired at turn 4"
    rows = await turns(client, tenant, run["id"])
    assert [(r["role"], r["text"]) for r in rows] == [
        ("persona", "Hi, my name is Dana"),
        ("agent", "Nice to meet you, Dana."),
        ("persona", "I want a refund for order A-1"),
        ("agent", "I have started your refund."),
        ("persona", "Do you remember my name?"),
        ("agent", "Your name is Dana."),
        ("persona", "Thanks, bye"),
        ("agent", "Goodbye!"),
    ]  # the reported call is recorded, never executed: no tool_result rows
    assert rows[3]["tool_calls"] == [
        {"id": "call-4-0", "name": "start_refund", "arguments": {"order": "A-1"}}
    ]
    assert [c["name"] for c in rows[7]["tool_calls"]] == ["end_call"]
    assert {r.headers["X-Session-Id"] for r in server.received} == {run["id"]}
    assert {r.body["session_id"] for r in server.received} == {run["id"]}
    assert server.received[2].body["messages"] == [
        {"role": "user", "content": "Hi, my name is Dana"},
        {"role": "assistant", "content": "Nice to meet you, Dana."},
        {"role": "user", "content": "I want a refund for order A-1"},
        {"role": "assistant", "content": "I have started your refund."},
        {"role": "user", "content": "Do you remember my name?"},
    ]


async def test_an_openai_chat_agent_is_sent_a_chat_request_and_its_usage_is_priced(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    agent = {
        **http_agent(f"{server.url}/openai", "openai_chat", model="acme-agent"),
        "system_prompt": "Be kind.",
    }
    run = await played(client, tenant, agent_settings, pool, agent)
    assert (run["status"], run["termination_reason"], run["pass_fail"]) == ("completed", "agent_ended", True)
    first = server.received[0].body
    assert first == {
        "model": "acme-agent",
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Hi, my name is Dana"},
        ],
        "user": run["id"],
    }
    rows = await turns(client, tenant, run["id"])
    agent_rows = [r for r in rows if r["role"] == "agent"]
    assert {(r["model"], r["input_tokens"], r["output_tokens"]) for r in agent_rows} == {
        ("acme-agent-1", 120, 30)
    }
    assert all(r["latency_ms"] is not None and r["latency_ms"] >= 0 for r in agent_rows)
    assert agent_rows[1]["tool_calls"][0] == {
        "id": "call_start_refund",
        "name": "start_refund",
        "arguments": {"order": "A-1"},
    }
    assert (run["agent_input_tokens"], run["agent_output_tokens"]) == (4 * 120, 4 * 30)
    assert run["agent_cost_cents"] > 0
    assert run["total_cost_cents"] == run["agent_cost_cents"] + run["persona_cost_cents"]


async def test_an_agent_that_reports_no_usage_costs_nothing_and_reported_usage_is_priced(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    free = await played(client, tenant, agent_settings, pool, http_agent(f"{server.url}/simple"))
    assert (free["agent_input_tokens"], free["agent_output_tokens"], free["agent_cost_cents"]) == (0, 0, 0)
    assert {r["model"] for r in await turns(client, tenant, free["id"]) if r["role"] == "agent"} == {"http"}
    paid = await played(client, tenant, agent_settings, pool, http_agent(f"{server.url}/simple?usage=1"))
    assert (paid["agent_input_tokens"], paid["agent_output_tokens"]) == (4 * 40, 4 * 10)
    assert paid["agent_cost_cents"] > 0


async def test_a_busy_agent_is_asked_again_after_its_retry_after(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    server.busy_left = 2
    run = await played(client, tenant, agent_settings, pool, http_agent(f"{server.url}/busy"))
    assert (run["status"], run["pass_fail"]) == ("completed", True)
    assert server.paths()[:3] == ["/busy", "/busy", "/busy"]  # two 503s, then the answer


# --- secrets ------------------------------------------------------------------------------------


async def test_a_secret_reaches_the_agent_but_is_never_shown_or_stored_in_plain(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    agent = http_agent(
        f"{server.url}/simple",
        headers={"Authorization": "Bearer {{secrets.API_KEY}}", "X-Team": "support"},
        secrets={"API_KEY": PLAIN_SECRET},
    )
    run = await played(client, tenant, agent_settings, pool, agent)
    assert run["status"] == "completed"
    assert {r.headers["Authorization"] for r in server.received} == {f"Bearer {PLAIN_SECRET}"}
    assert {r.headers["X-Team"] for r in server.received} == {"support"}
    shown = [
        run,
        (await get_run(client, tenant, run["id"])).body,
        await (await client.get(f"/agents/{run['agent_id']}", headers=tenant.headers())).json(),
        await (await client.get(f"{CASES}/{run['case_id']}", headers=tenant.headers())).json(),
    ]
    row = await read_run(pool, UUID(run["id"]))
    async with connection(pool) as conn:
        done = await conn.fetchval(
            "SELECT payload::text FROM outbox WHERE run_id = $1 AND type = 'agent_eval.run.done'", row.id
        )
    webhook_body = event_payload(decode_event(done), run_view(row))
    for body in shown:
        assert PLAIN_SECRET not in json.dumps(body)
    assert shown[1]["case"]["agent"]["endpoint"]["secrets"] == {"API_KEY": "***"}
    assert shown[2]["endpoint"]["secrets"] == {"API_KEY": "***"}
    assert shown[3]["agent"]["endpoint"]["secrets"] == {"API_KEY": "***"}
    assert PLAIN_SECRET not in webhook_body
    assert json.loads(webhook_body)["data"]["case"]["agent"]["endpoint"]["secrets"] == {"API_KEY": "***"}
    assert await rows_holding(pool, PLAIN_SECRET) == []
    stored = RunConfig.model_validate(row.config).case.agent.endpoint
    assert stored is not None  # the snapshot keeps the sealed value the executor opens
    assert SecretBox([TEST_WEBHOOK_KEY]).open(stored.secrets["API_KEY"]) == PLAIN_SECRET


async def rows_holding(pool: Pool, text: str) -> list[str]:
    """Every table with a row whose text holds `text` (the whole database is searched)."""
    async with connection(pool) as conn:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_type = 'BASE TABLE'"
        )
        found = []
        for table in tables:
            name = table["table_name"]
            hits = await conn.fetchval(f'SELECT count(*) FROM "{name}" t WHERE t::text LIKE $1', f"%{text}%")
            if hits:
                found.append(name)
    return found


# --- the agent failing the run ------------------------------------------------------------------


async def test_an_agent_answering_500_fails_the_run_with_the_status_and_the_body(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    run = await played(client, tenant, agent_settings, pool, http_agent(f"{server.url}/fail"))
    error = failed_with(run, "AGENT_HTTP_STATUS")
    assert error == 'the agent answered HTTP 500: {"error": "database exploded"}'
    assert server.paths() == ["/fail"]  # a failing agent is a finding: not asked again


async def test_an_agent_slower_than_its_timeout_fails_the_run(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    run = await played(client, tenant, agent_settings, pool, http_agent(f"{server.url}/slow", timeout_secs=1))
    assert (
        failed_with(run, "AGENT_HTTP_TIMEOUT")
        == "the agent did not answer within 1 s (endpoint.timeout_secs)"
    )


async def test_an_answer_that_is_not_json_fails_the_run_quoting_it(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    run = await played(client, tenant, agent_settings, pool, http_agent(f"{server.url}/garbage"))
    error = failed_with(run, "AGENT_BAD_RESPONSE")
    assert error == "the agent's answer is not JSON: <html>oops, an error page</html>"


async def test_an_answer_of_the_wrong_shape_fails_the_run_naming_what_is_missing(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    run = await played(
        client, tenant, agent_settings, pool, http_agent(f"{server.url}/simple", "openai_chat")
    )
    error = failed_with(run, "AGENT_BAD_RESPONSE")
    assert error.startswith("the agent's answer is not an OpenAI chat completion (choices: Field required): ")
    assert '"reply": "Nice to meet you, Dana."' in error


async def test_a_redirect_is_not_followed_and_fails_the_run_naming_where_it_pointed(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    run = await played(client, tenant, agent_settings, pool, http_agent(f"{server.url}/moved"))
    error = failed_with(run, "AGENT_HTTP_STATUS")
    assert error.startswith(f"the agent answered HTTP 302, a redirect to {server.url}/simple:")
    assert server.paths() == ["/moved"]


async def test_an_agent_still_rate_limiting_after_three_tries_fails_the_run(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    run = await played(client, tenant, agent_settings, pool, http_agent(f"{server.url}/limited"))
    error = failed_with(run, "AGENT_HTTP_STATUS")
    assert error == 'the agent answered HTTP 429 3 times: {"error": "slow down"}'
    assert server.paths() == ["/limited"] * 3


# --- the outbound policy --------------------------------------------------------------------------


async def test_a_name_resolving_to_a_private_address_is_refused_when_the_run_connects(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    """A name passes the check at save time; what it resolves to is checked as the run connects."""
    elsewhere = agent_settings.model_copy(update={"agent_allowed_networks": "10.0.3.0/24"})
    port = server.url.rsplit(":", 1)[1]
    run = await played(client, tenant, elsewhere, pool, http_agent(f"https://localhost:{port}/simple"))
    error = failed_with(run, "AGENT_HTTP_REFUSED")
    assert error.startswith("refused: localhost is not allowed: ")
    assert error.endswith("(an operator can allow private agents with AGENT_EVAL_AGENT_ALLOWED_NETWORKS)")
    assert server.received == []


async def test_the_allowed_networks_open_agent_calls_only_not_tool_calls(
    client: Client, tenant: Tenant, agent_settings: Settings, pool: Pool, server: AgentServer
) -> None:
    port = server.url.rsplit(":", 1)[1]
    tool = {"name": "start_refund", "description": "Start a refund", "url": f"https://127.0.0.1:{port}/tool"}
    made_agent = await created(client, tenant, "/agents", scripted_agent(tools=[tool]))
    persona = await created(client, tenant, "/agent-eval/personas", scripted_persona())
    case = await created(
        client, tenant, CASES, refund_case_body(made_agent["id"], persona["id"], tool_policy="real")
    )
    async with running_pipeline(agent_settings, pool):
        got = await trigger(client, tenant, case["id"], prefer="wait=60")
    results = [
        r["tool_result"] for r in await turns(client, tenant, got.body["id"]) if r["role"] == "tool_result"
    ]
    assert results[0]["error"] == "refused: 127.0.0.1 is a loopback address"
    assert server.received == []


# --- the caller on its own: connection refused -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def agent_at(url: str) -> Agent:
    now = "2026-01-01T00:00:00Z"
    ids = {"id": "01a20000-0000-7000-8000-000000000001", "company_id": "01a20000-0000-7000-8000-000000000002"}
    return Agent.model_validate({**ids, "created_at": now, "updated_at": now, **http_agent(url)})


OPENING = [TranscriptTurn(1, "persona", "Hi, my name is Dana")]
RUN_ID = UUID("01a20000-0000-7000-8000-0000000000ff")


async def test_a_refused_connection_is_tried_again_and_reaches_an_agent_that_comes_up(
    agent_settings: Settings,
) -> None:
    port = free_port()
    caller = HttpAgentCaller(agent_settings, connect_waits_s=(0.3, 0.3, 0.3, 0.3))
    try:
        call = asyncio.create_task(
            caller.complete(agent_at(f"http://127.0.0.1:{port}/simple"), RUN_ID, OPENING)
        )
        await asyncio.sleep(0.1)
        async with agent_server(port) as late:
            completion = await call
    finally:
        await caller.close()
    assert completion.text == "Nice to meet you, Dana."
    assert late.paths() == ["/simple"]


async def test_an_agent_nobody_listens_for_is_unreachable_after_the_retries(agent_settings: Settings) -> None:
    port = free_port()
    caller = HttpAgentCaller(agent_settings, connect_waits_s=(0.01, 0.01))
    try:
        with pytest.raises(ProviderError) as raised:
            await caller.complete(agent_at(f"http://127.0.0.1:{port}/simple"), RUN_ID, OPENING)
    finally:
        await caller.close()
    assert raised.value.code == "AGENT_HTTP_UNREACHABLE"
    assert str(raised.value).startswith(
        f"cannot connect to the agent at http://127.0.0.1:{port} after 3 tries: "
    )
