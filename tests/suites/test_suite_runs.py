"""Suite runs end to end on the in-process pipeline: every case runs `iterations` times, the aggregate
and the statistics are right, `suite_run.done` is announced once."""

from __future__ import annotations

import asyncio
from collections import Counter
from uuid import UUID

from consumers.biller import bill_run
from service.core.settings import Settings
from service.db.postgres import Pool, connection
from tests.support.api import Client, Tenant, created
from tests.support.receiver import running_receiver
from tests.support.run_api import running_pipeline
from tests.support.sse import SseReader
from tests.support.suites import SUITES, scripted_suite, start, suite_run
from tests.support.waiting import eventually


async def test_a_suite_run_runs_every_case_each_iteration_and_aggregates_them(
    client: Client, tenant: Tenant, suite_settings: Settings, pool: Pool
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True, False], parallelism=2)

    async with running_pipeline(suite_settings, pool):
        status, started = await start(client, tenant, suite["id"], {"iterations": 3, "labels": {"ci": "yes"}})
        assert status == 202, started

        view = await eventually(
            lambda: suite_run(client, tenant, suite["id"], started["suite_run_id"]),
            until=lambda v: bool(v["done"]),
            timeout_s=60,
            what="the suite run done",
        )

    assert len(started["run_ids"]) == 6
    assert (view["total_runs"], view["completed"], view["passed"], view["failed"], view["in_flight"]) == (
        6,
        6,
        3,
        3,
        0,
    )
    assert view["pass_rate"] == 0.5
    assert view["statistics"]["pass_rate"] == 0.5
    by_case = {c["case_name"]: c for c in view["statistics"]["cases"]}
    assert by_case["Case 1"]["pass_rate"] == 1.0
    assert by_case["Case 2"]["pass_rate"] == 0.0
    assert by_case["Case 1"]["pass_hat_k"] == [1.0, 1.0, 1.0]
    async with connection(pool) as conn:
        announced = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE type = 'agent_eval.suite_run.done' AND key = $1",
            started["suite_run_id"],
        )
    assert announced == 1


async def test_suite_run_done_is_announced_once_when_its_last_runs_are_billed_at_once_and_again(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    """Every run ends (errored: billable without scoring) and is billed concurrently, then every
    bill is redelivered: the suite run counts each run once, in a dense order, and announces
    itself once."""
    suite, _ = await scripted_suite(client, tenant, [True, True, True, True])
    status, started = await start(client, tenant, suite["id"], {"iterations": 3})
    assert status == 202
    run_ids = [UUID(r) for r in started["run_ids"]]
    async with connection(pool) as conn:
        await conn.execute(
            """UPDATE eval_runs SET status = 'failed', termination_reason = 'error', error_code = 'X',
                   ended_at = now() WHERE suite_run_id = $1""",
            started["suite_run_id"],
        )
    first = await asyncio.gather(*(bill_run(pool, run_id) for run_id in run_ids))
    again = await asyncio.gather(*(bill_run(pool, run_id) for run_id in run_ids))
    assert (all(first), any(again)) == (True, False)
    async with connection(pool) as conn:
        announced = await conn.fetch(
            "SELECT payload FROM outbox WHERE type = 'agent_eval.suite_run.done' AND key = $1",
            started["suite_run_id"],
        )
        seqs = await conn.fetch(
            "SELECT suite_seq FROM eval_runs WHERE suite_run_id = $1", started["suite_run_id"]
        )
        counted = await conn.fetchval(
            "SELECT done_runs FROM suite_runs WHERE id = $1", started["suite_run_id"]
        )
    assert len(announced) == 1
    assert announced[0]["payload"]["data"]["errored"] == 12
    assert sorted(r["suite_seq"] for r in seqs) == list(range(1, 13))
    assert counted == 12


async def test_the_suite_run_stream_shows_each_end_then_done_and_resumes_without_gaps(
    client: Client, tenant: Tenant, suite_settings: Settings, pool: Pool
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True, False], parallelism=1)
    async with running_pipeline(suite_settings, pool):
        status, started = await start(client, tenant, suite["id"], {"iterations": 2})
        assert status == 202
        url = f"{SUITES}/{suite['id']}/runs/{started['suite_run_id']}/events"
        async with client.get(url, headers=tenant.headers()) as response:
            live = await SseReader(response).events(timeout_s=60)  # ends after suite_run.done

    assert [(e.id, e.event) for e in live] == [
        ("1", "run.done"), ("2", "run.done"), ("3", "run.done"), ("4", "run.done"), ("5", "suite_run.done"),
    ]  # fmt: skip
    ends = [e.body() for e in live[:4]]
    assert sorted(e["id"] for e in ends) == sorted(started["run_ids"])
    assert sorted(e["pass_fail"] for e in ends) == [False, False, True, True]
    assert (live[4].body()["done"], live[4].body()["passed"], live[4].body()["failed"]) == (True, 2, 2)
    headers = {**tenant.headers(), "Last-Event-ID": "2"}
    async with client.get(url, headers=headers) as response:
        resumed = await SseReader(response).events()
    assert [(e.id, e.data) for e in resumed] == [(e.id, e.data) for e in live[2:]]
    async with client.get(f"{url}?after=x", headers=tenant.headers()) as response:
        assert (response.status, (await response.json())["code"]) == (400, "VALIDATION_ERROR")


async def test_a_finished_suite_run_reaches_a_webhook_endpoint_by_default(
    client: Client, tenant: Tenant, suite_settings: Settings, pool: Pool
) -> None:
    async with running_receiver() as receiver:
        endpoint = await created(client, tenant, "/webhooks", {"url": f"{receiver.url}/hooks"})
        suite, _ = await scripted_suite(client, tenant, [True, False], parallelism=2)
        async with running_pipeline(suite_settings, pool):
            status, started = await start(client, tenant, suite["id"], {"iterations": 2})
            assert status == 202
            deliveries = await receiver.wait_for(5)  # four runs done, then the suite run
    payloads = [d.verify(endpoint["secret"]) for d in deliveries]
    assert all(isinstance(p, dict) for p in payloads)
    by_type = Counter(p["type"] for p in payloads if isinstance(p, dict))
    assert by_type == {"agent_eval.run.done": 4, "agent_eval.suite_run.done": 1}
    [data] = [p["data"] for p in payloads if isinstance(p, dict) and p["type"] == "agent_eval.suite_run.done"]
    assert (data["suite_run_id"], data["done"], data["passed"], data["failed"]) == (
        started["suite_run_id"], True, 2, 2,
    )  # fmt: skip
