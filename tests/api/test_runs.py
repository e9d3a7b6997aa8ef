"""`/agent-eval/cases/{id}/run` and `/agent-eval/runs`: the blocking trigger (200 when done, 202
with `Location` and `Retry-After` otherwise), `Prefer: wait`, waiters woken by NOTIFY and on
shutdown, refusals that write nothing, turns and the evaluation of a done run (`test_run_idempotency.py`
and `test_run_reads.py` hold the rest)."""

from __future__ import annotations

import asyncio
import time
import uuid
from uuid import UUID

import pytest
from pytest_aiohttp.plugin import AiohttpClient

from service.core.settings import Settings
from service.db.postgres import Pool, connection
from service.gateway.app import create_app
from tests.support.api import ADMIN_HEADERS, Client, Json, Tenant, agent_body, key_for
from tests.support.run_api import (
    CASES,
    MUST_SAY_REFUND,
    RUNS,
    accepted,
    answer,
    count,
    get_run,
    mark_done,
    mark_over,
    queued_run,
    refused,
    running_pipeline,
    scripted_case,
    trigger,
    waiters_now,
)
from tests.support.scenarios import charges
from tests.support.waiting import eventually

FLOW: Json = {
    "flow_config_version": "1",
    "nodes": [
        {"id": "start", "type": "start", "name": "Start", "next_step_id": "end"},
        {"id": "end", "type": "end", "name": "End"},
    ],
}


# --- the blocking trigger with the pipeline running ---------------------------------------------


async def test_a_blocking_trigger_answers_200_with_the_done_run_and_its_merged_agent(
    client: Client, tenant: Tenant, api_settings: Settings, pool: Pool
) -> None:
    case = await scripted_case(
        client,
        tenant,
        success_criteria=[MUST_SAY_REFUND],
        agent_overrides={"greeting_message": "Hi, case override here.", "system_prompt": "Case prompt."},
    )
    body: Json = {"agent_overrides": {"system_prompt": "Run prompt."}, "labels": {"env": "ci", "team": "a"}}
    async with running_pipeline(api_settings, pool):
        got = await trigger(client, tenant, case["id"], body, prefer=None)
    assert got.status == 200, got.body
    assert not {"Preference-Applied", "Location", "Retry-After"} & set(got.headers)
    run = got.body
    assert (run["status"], run["queue_status"], run["termination_reason"]) == (
        "completed",
        "done",
        "agent_ended",
    )
    assert (run["score"], run["pass_fail"], run["evaluation"]["score"]) == (100.0, True, 100.0)
    assert run["total_cost_cents"] > 0
    assert await charges(pool, UUID(run["id"])) == [-run["total_cost_cents"]]
    assert (run["case_id"], run["case"]["id"], run["agent_id"], run["persona_id"]) == (
        case["id"],
        case["id"],
        case["agent_id"],
        case["persona_id"],
    )
    agent = run["case"]["agent"]
    assert (agent["system_prompt"], agent["greeting_message"]) == ("Run prompt.", "Hi, case override here.")
    assert run["prompts"]["agent"] == "Run prompt."
    assert "The caller wants a refund for order A-1." in run["prompts"]["persona"]
    assert (run["agent_overrides"], run["labels"]) == (body["agent_overrides"], body["labels"])
    assert (run["agent_model"], run["persona_model"], run["mode"]) == ("scripted", "scripted", "text")
    again = await get_run(client, tenant, run["id"])
    assert (again.status, again.body) == (200, run)


async def test_turns_and_evaluation_of_a_done_run(
    client: Client, tenant: Tenant, case: Json, api_settings: Settings, pool: Pool
) -> None:
    async with running_pipeline(api_settings, pool):
        got = await trigger(client, tenant, case["id"], prefer="wait=30")
    assert got.status == 200, got.body
    run_id = got.body["id"]
    turns = await answer(await client.get(f"{RUNS}/{run_id}/turns", headers=tenant.headers()))
    assert turns.status == 200
    rows = turns.body["data"]
    assert [(r["turn_number"], r["role"]) for r in rows] == [
        (1, "agent"),
        (2, "persona"),
        (3, "agent"),
        (4, "tool_result"),
        (5, "persona"),
        (6, "agent"),
    ]
    assert {r["run_id"] for r in rows} == {run_id}
    assert (rows[0]["text"], rows[1]["text"]) == ("Hello, how can I help?", "I want a refund")
    assert rows[2]["tool_calls"][0]["name"] == "start_refund"
    evaluation = await answer(await client.get(f"{RUNS}/{run_id}/evaluation", headers=tenant.headers()))
    assert evaluation.status == 200
    assert evaluation.body["score"] == 100.0
    assert (evaluation.body["pass_fail"], evaluation.body["inconclusive"]) == (True, False)
    assert [r["passed"] for r in evaluation.body["results"]] == [True]
    assert (evaluation.body["status"], evaluation.body["termination_reason"]) == ("completed", "agent_ended")
    assert evaluation.body["queue_status"] == "done"


async def test_a_wait_past_60_s_is_clamped_and_the_applied_value_echoed(
    client: Client, tenant: Tenant, case: Json, api_settings: Settings, pool: Pool
) -> None:
    async with running_pipeline(api_settings, pool):
        got = await trigger(client, tenant, case["id"], prefer="wait=999")
    assert (got.status, got.body["queue_status"]) == (200, "done"), got.body
    assert got.headers["Preference-Applied"] == "wait=60"


# --- answers while the run is not done (nothing executes) -------------------------------------------


async def test_wait_0_or_less_answers_202_at_once_with_where_to_poll(
    client: Client, tenant: Tenant, case: Json
) -> None:
    got = await trigger(client, tenant, case["id"], prefer="wait=0")
    accepted(got, got.body["id"])
    assert got.headers["Preference-Applied"] == "wait=0"
    assert (got.body["status"], got.body["queue_status"]) == ("queued", "pending")
    assert (got.body["score"], got.body["evaluation"], got.body["total_cost_cents"]) == (None, None, 0)
    assert got.body["case"]["agent"]["system_prompt"] == "You help customers."
    negative = await trigger(client, tenant, case["id"], prefer="wait=-5")
    accepted(negative, negative.body["id"])
    assert negative.headers["Preference-Applied"] == "wait=0"


async def test_wait_1_holds_the_trigger_about_a_second_then_answers_202(
    client: Client, tenant: Tenant, case: Json
) -> None:
    started = time.monotonic()
    got = await trigger(client, tenant, case["id"], prefer="wait=1")
    elapsed = time.monotonic() - started
    accepted(got, got.body["id"])
    assert got.headers["Preference-Applied"] == "wait=1"
    assert 0.9 <= elapsed < 10, elapsed


async def test_a_run_over_but_not_done_says_retry_after_1(
    client: Client, tenant: Tenant, case: Json, pool: Pool
) -> None:
    run = await queued_run(client, tenant, case["id"])
    await mark_over(pool, run["id"])
    got = await get_run(client, tenant, run["id"], prefer="wait=0")
    accepted(got, run["id"], retry_after="1")
    assert (got.body["status"], got.body["termination_reason"]) == ("completed", "max_turns")
    assert got.headers["Preference-Applied"] == "wait=0"


async def test_get_without_prefer_answers_200_even_before_the_run_is_done(
    client: Client, tenant: Tenant, case: Json
) -> None:
    run = await queued_run(client, tenant, case["id"])
    got = await get_run(client, tenant, run["id"])
    assert got.status == 200
    assert got.body == run
    assert not {"Location", "Retry-After", "Preference-Applied"} & set(got.headers)
    # A preference the server cannot read is ignored (RFC 7240): answered at once, nothing echoed.
    unread = await get_run(client, tenant, run["id"], prefer="wait=soon")
    assert unread.status == 200
    assert "Preference-Applied" not in unread.headers


async def test_get_with_prefer_wait_answers_202_while_the_run_is_not_done(
    client: Client, tenant: Tenant, case: Json
) -> None:
    run = await queued_run(client, tenant, case["id"])
    got = await get_run(client, tenant, run["id"], prefer="wait=1")
    accepted(got, run["id"])
    assert got.headers["Preference-Applied"] == "wait=1"
    among_others = await get_run(client, tenant, run["id"], prefer="respond-async, wait=0")
    accepted(among_others, run["id"])
    assert among_others.headers["Preference-Applied"] == "wait=0"


async def test_get_with_prefer_wait_answers_200_at_once_when_the_run_is_done(
    client: Client, tenant: Tenant, case: Json, pool: Pool
) -> None:
    run = await queued_run(client, tenant, case["id"])
    await mark_done(pool, run["id"], notify=False)
    started = time.monotonic()
    got = await get_run(client, tenant, run["id"], prefer="wait=30")
    assert (got.status, got.body["queue_status"]) == (200, "done")
    assert got.headers["Preference-Applied"] == "wait=30"
    assert time.monotonic() - started < 10


async def test_a_waiting_get_is_woken_by_notify(
    aiohttp_client: AiohttpClient, api_settings: Settings, pool: Pool, tenant: Tenant
) -> None:
    # The safety-net poll is pushed past the wait, so only the notification can answer in time.
    slow_poll = api_settings.model_copy(update={"waiter_poll_s": 60.0})
    client = await aiohttp_client(create_app(slow_poll, pool=pool))
    case = await scripted_case(client, tenant)
    run = await queued_run(client, tenant, case["id"])
    before = await waiters_now()
    started = time.monotonic()
    waiting = asyncio.create_task(get_run(client, tenant, run["id"], prefer="wait=30"))
    await eventually(waiters_now, until=lambda n: n > before, what="the GET to be waiting")
    await mark_done(pool, run["id"])
    got = await waiting
    assert (got.status, got.body["queue_status"]) == (200, "done"), got.body
    assert time.monotonic() - started < 10


async def test_a_wake_up_for_a_run_not_done_keeps_the_request_waiting_until_it_is(
    aiohttp_client: AiohttpClient, api_settings: Settings, pool: Pool, tenant: Tenant
) -> None:
    """A woken request reads the whole run as its answer; a stale wake (a notification for a
    run that is not done) must not answer it early."""
    slow_poll = api_settings.model_copy(update={"waiter_poll_s": 60.0})
    client = await aiohttp_client(create_app(slow_poll, pool=pool))
    case = await scripted_case(client, tenant)
    run = await queued_run(client, tenant, case["id"])
    before = await waiters_now()
    waiting = asyncio.create_task(get_run(client, tenant, run["id"], prefer="wait=30"))
    await eventually(waiters_now, until=lambda n: n > before, what="the GET to be waiting")
    async with connection(pool) as conn:
        await conn.execute("SELECT pg_notify('agent_eval_runs', $1)", run["id"])
    await asyncio.sleep(0.5)
    assert not waiting.done()
    await mark_done(pool, run["id"])
    got = await waiting
    assert (got.status, got.body["queue_status"]) == (200, "done"), got.body


async def test_blocked_requests_are_answered_202_when_the_gateway_shuts_down(
    client: Client, tenant: Tenant, case: Json
) -> None:
    run = await queued_run(client, tenant, case["id"])
    before = await waiters_now()
    started = time.monotonic()
    blocked_get = asyncio.create_task(get_run(client, tenant, run["id"], prefer="wait=30"))
    blocked_post = asyncio.create_task(trigger(client, tenant, case["id"], prefer=None))
    await eventually(waiters_now, until=lambda n: n >= before + 2, what="both requests to be waiting")
    await client.server.close()
    got, posted = await asyncio.gather(blocked_get, blocked_post)
    assert time.monotonic() - started < 10
    accepted(got, run["id"])
    accepted(posted, posted.body["id"])
    assert got.headers["Preference-Applied"] == "wait=30"
    assert "Preference-Applied" not in posted.headers


# --- refusals: nothing is written -----------------------------------------------------------------


async def test_a_suspended_company_is_refused_402(
    client: Client, tenant: Tenant, case: Json, pool: Pool
) -> None:
    suspend = await client.patch(
        f"/admin/companies/{tenant.company_id}", json={"is_suspended": True}, headers=ADMIN_HEADERS
    )
    assert suspend.status == 200, await suspend.text()
    refused(await trigger(client, tenant, case["id"]), 402, "BILLING_ERROR")
    assert await count(pool, "eval_runs") == 0


@pytest.mark.parametrize("how", ["missing", "deleted", "foreign"])
async def test_a_case_that_cannot_be_used_is_404(
    client: Client, tenant: Tenant, stranger: Tenant, case: Json, pool: Pool, how: str
) -> None:
    if how == "missing":
        case_id = str(uuid.uuid4())
    elif how == "deleted":
        case_id = case["id"]
        deleted = await client.delete(f"{CASES}/{case_id}", headers=tenant.headers())
        assert deleted.status == 204
    else:
        case_id = (await scripted_case(client, stranger))["id"]
    refused(await trigger(client, tenant, case_id), 404, "NOT_FOUND")
    assert await count(pool, "eval_runs") == 0


async def test_voice_mode_is_422_and_text_mode_isaccepted(
    client: Client, tenant: Tenant, case: Json, pool: Pool
) -> None:
    refused(await trigger(client, tenant, case["id"], {"mode": "voice"}), 422, "MODE_NOT_SUPPORTED")
    assert await count(pool, "eval_runs") == 0
    got = await trigger(client, tenant, case["id"], {"mode": "text"})
    accepted(got, got.body["id"])


async def test_a_flow_agent_run_is_accepted_with_its_flow_in_the_snapshot(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    flow_agent = agent_body(type="flow", flow_config=FLOW, model="scripted")
    case = await scripted_case(client, tenant, agent=flow_agent)
    got = await trigger(client, tenant, case["id"])
    accepted(got, got.body["id"])
    assert got.body["case"]["agent"]["type"] == "flow"
    assert got.body["case"]["agent"]["flow_config"]["nodes"] == FLOW["nodes"]
    assert await count(pool, "eval_runs") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"frobnicate": True}, "body.frobnicate"),
        ({"mode": "video"}, "body.mode"),
        ({"agent_overrides": {"temperature": 5}}, "body.agent_overrides.temperature"),
        ({"agent_overrides": {"model": "nowhere:gpt-9"}}, "body.agent_overrides.model"),
        ({"agent_overrides": {"type": "flow"}}, "body.agent_overrides.type"),
        ({"agent_overrides": "be nice"}, "body.agent_overrides"),
        (
            {"agent_overrides": {"rules": [{"when": "x", "call_tool": {"name": "nope", "arguments": {}}}]}},
            "body.agent_overrides.rules",
        ),
        ({"labels": {"a=b": "x"}}, "body.labels"),
        ({"labels": {"": "x"}}, "body.labels"),
        ({"labels": {"k": 1}}, "body.labels"),
        ({"labels": ["env=ci"]}, "body.labels"),
    ],
)
async def test_an_invalid_body_is_400_naming_the_field_and_nothing_is_written(
    client: Client, tenant: Tenant, case: Json, pool: Pool, body: Json, field: str
) -> None:
    got = await trigger(client, tenant, case["id"], body, key="k-1")
    refused(got, 400, "VALIDATION_ERROR")
    assert any(f["field"].startswith(field) for f in got.body["fields"]), got.body
    assert (await count(pool, "eval_runs"), await count(pool, "idempotency_keys")) == (0, 0)


async def test_triggering_needs_the_run_scope(client: Client, tenant: Tenant, case: Json, pool: Pool) -> None:
    reader = await key_for(pool, tenant, ["agent_eval:read"])
    refused(await trigger(client, reader, case["id"]), 401, "INSUFFICIENT_SCOPE")
    assert await count(pool, "eval_runs") == 0
    run = await queued_run(client, tenant, case["id"])
    assert (await get_run(client, reader, run["id"])).status == 200


async def test_a_malformed_case_id_is_400(client: Client, tenant: Tenant) -> None:
    got = await trigger(client, tenant, "not-a-uuid")
    refused(got, 400, "VALIDATION_ERROR")
    assert [f["field"] for f in got.body["fields"]] == ["path.case_id"]
