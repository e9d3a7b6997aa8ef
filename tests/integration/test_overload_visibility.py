"""Overload is visible and is not an outage (issue 15): while one small executor is saturated, runs
queue up and its pool is busy, the queue's age (`agent_eval_queue_oldest_pending_age_seconds`)
shows how long the oldest released run has waited and falls back to 0 once the queue drains,
and the role's `/readyz` answers ready, promptly, all along."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY
from pytest_aiohttp.plugin import AiohttpClient

from consumers.redispatch import measure_queue_age
from service.bus.memory import InProcessBus
from service.core.metrics import QUEUE_OLDEST_PENDING_AGE
from service.core.settings import Settings
from service.db.postgres import create_pool
from service.runtime.health import CHECK_TIMEOUT_S, Heartbeat, health_app
from service.runtime.stopping import Dependencies
from tests.support.busy_pool import saturated
from tests.support.factories import make_company
from tests.support.pipeline import pipeline
from tests.support.scenarios import finished, make_case, trigger

Client = TestClient[web.Request, web.Application]
QUEUED = 30


def _queue_age() -> float:
    return REGISTRY.get_sample_value("agent_eval_queue_oldest_pending_age_seconds") or 0.0


async def _probe(client: Client, ages: list[float], *, times: int) -> list[tuple[int, float]]:
    """Ask `/readyz` `times` times, 0.2 s apart: (status, seconds to answer); note the queue's age."""
    answers = []
    for _ in range(times):
        started = time.monotonic()
        response = await client.get("/readyz")
        answers.append((response.status, time.monotonic() - started))
        ages.append(_queue_age())
        await asyncio.sleep(0.2)
    return answers


async def test_a_saturated_executor_shows_a_queue_age_and_stays_ready(
    aiohttp_client: AiohttpClient, settings: Settings, database_url: str, bus: InProcessBus
) -> None:
    settings = settings.model_copy(
        update={
            "executor_concurrency": 2,
            "scripted_latency_s": 0.05,
            "maintenance_interval_s": 0.2,
            "max_inflight_runs_per_company": 10_000,
        }
    )
    pool = await create_pool(database_url, min_size=2, max_size=4)
    try:
        checks = Dependencies(pool=pool, bus=bus, dsn=database_url).checks()
        client: Client = await aiohttp_client(health_app({"executor": Heartbeat()}, checks))
        company = await make_company(pool, balance_cents=100_000)
        case_id = await make_case(pool, company.id)
        run_ids = [await trigger(pool, settings, company.id, case_id) for _ in range(QUEUED)]
        answers: list[tuple[int, float]] = []
        ages: list[float] = []
        QUEUE_OLDEST_PENDING_AGE.set(0)  # what another test left is not this queue
        async with pipeline(settings, pool, bus, maintenance=True):
            done = asyncio.gather(*(finished(pool, run_id, timeout_s=120) for run_id in run_ids))
            async with saturated(pool, workers=60):  # for the first probes, the pool is busy too
                answers += await _probe(client, ages, times=10)
            while not done.done():
                answers += await _probe(client, ages, times=1)
            await done
        assert await measure_queue_age(pool) == 0.0
    finally:
        await pool.close()
    assert {status for status, _ in answers} == {200}
    assert max(seconds for _, seconds in answers) < CHECK_TIMEOUT_S
    assert max(ages) > 1.0  # the oldest run waited, and the metric said so
