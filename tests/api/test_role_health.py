"""The health server of the roles without an API (relay, consumers): liveness vs readiness."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpClient

from service.runtime.health import LIVENESS_WINDOW_S, Drain, Heartbeat, health_app

Client = TestClient[web.Request, web.Application]


async def _ok() -> bool:
    return True


async def _failing() -> bool:
    return False


async def _raising() -> bool:
    raise ConnectionError("database is gone")


async def test_a_beating_loop_is_alive_and_ready_when_its_checks_pass(aiohttp_client: AiohttpClient) -> None:
    client: Client = await aiohttp_client(health_app({"relay": Heartbeat()}, {"database": _ok}))
    live = await client.get("/healthz")
    assert (live.status, await live.json()) == (200, {"status": "ok", "checks": {}})
    ready = await client.get("/readyz")
    assert (ready.status, await ready.json()) == (200, {"status": "ok", "checks": {"database": "ok"}})
    metrics = await client.get("/metrics")
    assert metrics.status == 200
    assert "agent_eval_relay_active" in await metrics.text()


async def test_a_stalled_loop_fails_liveness_only(aiohttp_client: AiohttpClient) -> None:
    stalled = Heartbeat()
    stalled._last = time.monotonic() - LIVENESS_WINDOW_S - 1  # the loop has not beaten for 31 s
    client: Client = await aiohttp_client(health_app({"executor": stalled}, {"database": _ok}))
    live = await client.get("/healthz")
    assert live.status == 503
    body = await live.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["executor"].startswith("stale")
    assert (await client.get("/readyz")).status == 200


async def test_a_failing_dependency_fails_readiness_only(aiohttp_client: AiohttpClient) -> None:
    checks = {"database": _failing, "kafka": _raising}
    client: Client = await aiohttp_client(health_app({"relay": Heartbeat()}, checks))
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert await ready.json() == {
        "status": "unavailable",
        "checks": {"database": "failing", "kafka": "failing"},
    }
    assert (await client.get("/healthz")).status == 200


async def test_a_stopping_role_fails_readiness_at_once_and_stays_alive(aiohttp_client: AiohttpClient) -> None:
    drain = Drain()
    client: Client = await aiohttp_client(health_app({"executor": Heartbeat()}, {"database": _ok}, drain))
    assert (await client.get("/readyz")).status == 200
    drain.begin()  # SIGTERM
    ready = await client.get("/readyz")
    assert (ready.status, await ready.json()) == (
        503,
        {"status": "unavailable", "checks": {"shutdown": "draining"}},
    )
    assert (await client.get("/healthz")).status == 200  # not restarted while it drains
