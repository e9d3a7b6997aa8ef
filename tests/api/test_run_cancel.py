"""`POST /agent-eval/runs/{id}/cancel`: a pending run is cancelled and done at once (200, cost 0,
no charge); a running one is flagged once (202) and ends at its next turn boundary; a run
already over is returned unchanged; idempotent, with `Idempotency-Key` bound to one request."""

from __future__ import annotations

import asyncio
import time
import uuid
from uuid import UUID

import pytest

from service.db.postgres import Pool
from tests.support.api import Client, Json, Tenant, key_for
from tests.support.run_api import (
    RUNS,
    answer,
    cancel,
    count,
    get_run,
    mark_done,
    mark_over,
    mark_running,
    queued_run,
    refused,
    scripted_case,
    waiters_now,
)
from tests.support.scenarios import charges, event_types
from tests.support.waiting import eventually


@pytest.fixture
async def run(client: Client, tenant: Tenant) -> Json:
    """A queued run of a scripted case; nothing executes it."""
    case = await scripted_case(client, tenant)
    return await queued_run(client, tenant, case["id"])


async def _events(pool: Pool, run: Json) -> list[str]:
    return await event_types(pool, UUID(run["id"]))


async def test_a_pending_run_is_cancelled_and_done_at_once_without_a_charge(
    client: Client, tenant: Tenant, run: Json, pool: Pool
) -> None:
    got = await cancel(client, tenant, run["id"])
    assert got.status == 200, got.body
    assert "Location" not in got.headers
    cancelled = got.body
    assert (cancelled["id"], cancelled["status"], cancelled["termination_reason"]) == (
        run["id"],
        "cancelled",
        "cancelled",
    )
    assert (cancelled["queue_status"], cancelled["total_cost_cents"], cancelled["score"]) == ("done", 0, None)
    assert cancelled["ended_at"] is not None
    assert await charges(pool, UUID(run["id"])) == []
    assert await _events(pool, run) == ["queued", "cancelled", "done"]
    assert (await get_run(client, tenant, run["id"])).body == cancelled


async def test_cancelling_a_cancelled_run_again_changes_nothing(
    client: Client, tenant: Tenant, run: Json, pool: Pool
) -> None:
    first = await cancel(client, tenant, run["id"])
    second = await cancel(client, tenant, run["id"])
    assert (second.status, second.body) == (200, first.body)
    assert await _events(pool, run) == ["queued", "cancelled", "done"]


async def test_a_running_run_is_flagged_once_and_answered_202(
    client: Client, tenant: Tenant, run: Json, pool: Pool
) -> None:
    await mark_running(pool, run["id"])
    got = await cancel(client, tenant, run["id"])
    assert got.status == 202, got.body
    assert (got.headers["Location"], got.headers["Retry-After"]) == (f"{RUNS}/{run['id']}", "2")
    assert "Preference-Applied" not in got.headers
    assert (got.body["status"], got.body["queue_status"], got.body["termination_reason"]) == (
        "running",
        "claimed",
        None,
    )
    flagged_at = got.body["cancel_requested_at"]
    assert flagged_at is not None
    assert await _events(pool, run) == ["queued", "cancel_requested"]
    again = await cancel(client, tenant, run["id"])
    assert again.status == 202, again.body
    assert again.body["cancel_requested_at"] == flagged_at
    assert await _events(pool, run) == ["queued", "cancel_requested"]
    assert await charges(pool, UUID(run["id"])) == []


async def test_cancelling_a_running_run_honours_prefer_wait(
    client: Client, tenant: Tenant, run: Json, pool: Pool
) -> None:
    await mark_running(pool, run["id"])
    got = await cancel(client, tenant, run["id"], prefer="wait=1")
    assert got.status == 202, got.body
    assert got.headers["Preference-Applied"] == "wait=1"
    before = await waiters_now()
    started = time.monotonic()
    waiting = asyncio.create_task(cancel(client, tenant, run["id"], prefer="wait=30"))
    await eventually(waiters_now, until=lambda n: n > before, what="the cancel to be waiting")
    await mark_done(pool, run["id"])  # as the executor and biller would end it
    done = await waiting
    assert (done.status, done.body["queue_status"]) == (200, "done"), done.body
    assert done.headers["Preference-Applied"] == "wait=30"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("done", [False, True])
async def test_a_run_already_over_is_returned_unchanged(
    client: Client, tenant: Tenant, run: Json, pool: Pool, done: bool
) -> None:
    await (mark_done(pool, run["id"]) if done else mark_over(pool, run["id"]))
    before = (await get_run(client, tenant, run["id"])).body
    got = await cancel(client, tenant, run["id"])
    assert (got.status, got.body) == (200, before)
    assert (got.body["status"], got.body["termination_reason"]) == ("completed", "max_turns")
    assert got.body["cancel_requested_at"] is None
    assert await _events(pool, run) == ["queued"]


async def test_another_companys_run_cannot_be_cancelled(
    client: Client, tenant: Tenant, stranger: Tenant, run: Json, pool: Pool
) -> None:
    refused(await cancel(client, stranger, run["id"]), 404, "NOT_FOUND")
    refused(await cancel(client, stranger, run["id"], key="k-1"), 404, "NOT_FOUND")
    refused(await cancel(client, tenant, str(uuid.uuid4())), 404, "NOT_FOUND")
    after = (await get_run(client, tenant, run["id"])).body
    assert (after["status"], after["queue_status"]) == ("queued", "pending")
    assert await count(pool, "idempotency_keys") == 0


async def test_cancel_replays_with_the_same_key_and_refuses_it_for_another_run(
    client: Client, tenant: Tenant, run: Json, pool: Pool
) -> None:
    other = await queued_run(client, tenant, run["case_id"])
    first = await cancel(client, tenant, run["id"], key="k-1")
    replay = await cancel(client, tenant, run["id"], key="k-1")
    assert (first.status, replay.status, replay.body) == (200, 200, first.body)
    refused(await cancel(client, tenant, other["id"], key="k-1"), 422, "IDEMPOTENCY_KEY_REUSED")
    still = (await get_run(client, tenant, other["id"])).body
    assert (still["status"], still["queue_status"]) == ("queued", "pending")
    assert await _events(pool, other) == ["queued"]


async def test_a_key_used_for_a_trigger_cannot_cancel(client: Client, tenant: Tenant, run: Json) -> None:
    response = await client.post(
        f"/agent-eval/cases/{run['case_id']}/run",
        json={},
        headers={**tenant.headers(), "Prefer": "wait=0", "Idempotency-Key": "k-1"},
    )
    assert response.status == 202
    refused(await cancel(client, tenant, run["id"], key="k-1"), 422, "IDEMPOTENCY_KEY_REUSED")
    assert (await get_run(client, tenant, run["id"])).body["status"] == "queued"


async def test_an_unusable_key_on_cancel_is_400(client: Client, tenant: Tenant, run: Json) -> None:
    got = await cancel(client, tenant, run["id"], key="k" * 256)
    refused(got, 400, "VALIDATION_ERROR")
    assert [f["field"] for f in got.body["fields"]] == ["header.Idempotency-Key"]
    assert (await get_run(client, tenant, run["id"])).body["status"] == "queued"


async def test_cancel_takes_no_fields(client: Client, tenant: Tenant, run: Json) -> None:
    response = await client.post(
        f"{RUNS}/{run['id']}/cancel", json={"reason": "bored"}, headers=tenant.headers()
    )
    got = await answer(response)
    refused(got, 400, "VALIDATION_ERROR")
    assert [f["field"] for f in got.body["fields"]] == ["body.reason"]
    response = await client.post(f"{RUNS}/{run['id']}/cancel", json={}, headers=tenant.headers())
    assert response.status == 200


async def test_cancelling_needs_the_run_scope(client: Client, tenant: Tenant, run: Json, pool: Pool) -> None:
    reader = await key_for(pool, tenant, ["agent_eval:read"])
    refused(await cancel(client, reader, run["id"]), 401, "INSUFFICIENT_SCOPE")
    assert (await get_run(client, tenant, run["id"])).body["status"] == "queued"
