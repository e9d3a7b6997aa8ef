"""`Idempotency-Key` on `POST /agent-eval/cases/{id}/run`: a replay answers the same run, another request
under the key is 422, a duplicate waits for the first (409 after 5 s), and refusals store no key."""

from __future__ import annotations

import asyncio
import time
import uuid
from uuid import UUID

import pytest

from service.db.postgres import Pool
from service.domain.idempotency import fingerprint
from tests.support.api import ADMIN_HEADERS, Client, Json, Tenant, make_tenant
from tests.support.run_api import (
    CASES,
    accepted,
    blocked_on_key,
    count,
    held_key,
    queued_run,
    refused,
    scripted_case,
    trigger,
)
from tests.support.waiting import eventually


async def test_the_same_key_and_body_replay_the_same_run(
    client: Client, tenant: Tenant, case: Json, pool: Pool
) -> None:
    first = await trigger(client, tenant, case["id"], {"labels": {"a": "1", "b": "2"}}, key="k-1")
    # The same JSON with other key order is the same request.
    second = await trigger(client, tenant, case["id"], {"labels": {"b": "2", "a": "1"}}, key="k-1")
    accepted(first, first.body["id"])
    accepted(second, first.body["id"])
    assert (await count(pool, "eval_runs"), await count(pool, "idempotency_keys")) == (1, 1)


@pytest.mark.parametrize("change", ["body", "path"])
async def test_the_same_key_for_another_request_is_422(
    client: Client, tenant: Tenant, case: Json, pool: Pool, change: str
) -> None:
    await trigger(client, tenant, case["id"], {"labels": {"a": "1"}}, key="k-1")
    other_case = (await scripted_case(client, tenant))["id"] if change == "path" else case["id"]
    body: Json = {"labels": {"a": "2"}} if change == "body" else {"labels": {"a": "1"}}
    got = await trigger(client, tenant, other_case, body, key="k-1")
    refused(got, 422, "IDEMPOTENCY_KEY_REUSED")
    assert await count(pool, "eval_runs") == 1


async def test_an_unusable_key_is_400_and_nothing_is_written(
    client: Client, tenant: Tenant, case: Json, pool: Pool
) -> None:
    for key in ("k" * 256, "clé", "   ", "tab\there"):
        got = await trigger(client, tenant, case["id"], key=key)
        refused(got, 400, "VALIDATION_ERROR")
        assert [f["field"] for f in got.body["fields"]] == ["header.Idempotency-Key"], key
    assert (await count(pool, "eval_runs"), await count(pool, "idempotency_keys")) == (0, 0)
    got = await trigger(client, tenant, case["id"], key="k" * 255)
    accepted(got, got.body["id"])


async def test_a_concurrent_duplicate_still_in_progress_after_5_s_is_409(
    client: Client, tenant: Tenant, case: Json, pool: Pool
) -> None:
    async with held_key(pool, tenant, fingerprint=bytes(32), resource_id=uuid.uuid4()):
        started = time.monotonic()
        got = await trigger(client, tenant, case["id"], key="k-1")
        elapsed = time.monotonic() - started
    refused(got, 409, "IDEMPOTENCY_KEY_IN_USE")
    assert 4.5 <= elapsed < 15, elapsed
    assert (await count(pool, "eval_runs"), await count(pool, "idempotency_keys")) == (0, 0)
    # The first request gave up (rolled back): the key is free again.
    got = await trigger(client, tenant, case["id"], key="k-1")
    accepted(got, got.body["id"])


async def test_a_concurrent_duplicate_replays_the_first_requests_run_once_it_commits(
    client: Client, tenant: Tenant, case: Json, pool: Pool
) -> None:
    first = await queued_run(client, tenant, case["id"])
    same = fingerprint("POST", f"{CASES}/{case['id']}/run", {})
    async with held_key(pool, tenant, fingerprint=same, resource_id=UUID(first["id"])) as commit:
        duplicate = asyncio.create_task(trigger(client, tenant, case["id"], key="k-1"))
        await eventually(lambda: blocked_on_key(pool), what="the duplicate to wait on the key")
        await commit()
    got = await duplicate
    accepted(got, first["id"])
    assert await count(pool, "eval_runs") == 1


async def test_a_404_stores_no_key_so_a_retry_with_it_succeeds(
    client: Client, tenant: Tenant, case: Json, pool: Pool
) -> None:
    missing = await trigger(client, tenant, str(uuid.uuid4()), key="k-1")
    refused(missing, 404, "NOT_FOUND")
    assert await count(pool, "idempotency_keys") == 0
    got = await trigger(client, tenant, case["id"], key="k-1")
    accepted(got, got.body["id"])


async def test_a_company_without_credits_is_402_and_a_retry_with_the_key_after_a_top_up_succeeds(
    client: Client, pool: Pool
) -> None:
    broke = await make_tenant(pool, "Broke", credits_cents=0)
    case = await scripted_case(client, broke)
    unpaid = await trigger(client, broke, case["id"], key="k-1")
    refused(unpaid, 402, "BILLING_ERROR")
    assert unpaid.body["error"], unpaid.body
    assert (await count(pool, "eval_runs"), await count(pool, "idempotency_keys")) == (0, 0)
    top_up = await client.post(
        f"/admin/companies/{broke.company_id}/credits",
        json={"amount_cents": 500, "reason": "top-up"},
        headers=ADMIN_HEADERS,
    )
    assert top_up.status in (200, 201), await top_up.text()
    got = await trigger(client, broke, case["id"], key="k-1")
    accepted(got, got.body["id"])
    assert await count(pool, "eval_runs") == 1
