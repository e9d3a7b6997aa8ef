"""Readiness under overload (issue 15): a pool saturated by the workload is load, not
unavailability. The probe does not queue behind the work (which would take longer than its own
timeout), so `/readyz` stays ready while the database answers, and still fails when it does not.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from pytest_aiohttp.plugin import AiohttpClient

from service.core.settings import Settings
from service.db.postgres import create_pool
from service.gateway.app import create_app
from service.local.pgserver import free_port
from service.runtime.health import CHECK_TIMEOUT_S, database_check, run_checks
from tests.support.busy_pool import saturated

Client = TestClient[web.Request, web.Application]


async def test_the_gateway_stays_ready_while_every_pooled_connection_is_busy(
    aiohttp_client: AiohttpClient, settings: Settings, database_url: str
) -> None:
    pool = await create_pool(database_url, min_size=2, max_size=2)
    try:
        client: Client = await aiohttp_client(create_app(settings, pool=pool))
        async with saturated(pool):
            queued = await run_checks({"database": database_check(pool)})  # waiting in line for the pool
            started = time.monotonic()
            response = await client.get("/readyz")
            answered_s = time.monotonic() - started
            body = await response.json()
    finally:
        await pool.close()
    assert queued == {"database": "timeout"}  # the load is real: a queued probe would have failed
    assert (response.status, body) == (200, {"status": "ok", "checks": {"database": "ok"}})
    assert answered_s < CHECK_TIMEOUT_S / 2


async def test_a_saturated_gateway_whose_database_does_not_answer_is_unready(
    aiohttp_client: AiohttpClient, settings: Settings, database_url: str
) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/agent_eval"
    settings = settings.model_copy(update={"database_url": SecretStr(unreachable)})
    pool = await create_pool(database_url, min_size=2, max_size=2)
    try:
        client: Client = await aiohttp_client(create_app(settings, pool=pool))
        async with saturated(pool):
            response = await client.get("/readyz")
            body = await response.json()
    finally:
        await pool.close()
    assert (response.status, body) == (503, {"status": "unavailable", "checks": {"database": "failing"}})
