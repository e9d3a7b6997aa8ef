"""Stopping a process cleanly (Kubernetes sends SIGTERM, then SIGKILL after the grace period).

The order, for the gateway and every role: readiness fails at once (`Drain.begin`), so the
process leaves the Service's endpoints; the process keeps working for `shutdown_pause_s`, while
load balancers catch up; then it stops. The gateway then stops listening, answers blocked
requests 202 and closes its event streams, and gives in-flight requests `shutdown_timeout_s`. A
consumer role stops fetching, hands back or finishes what it holds, commits and leaves its group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from service.bus.interface import Bus, FetchPolicy
from service.core.logging import get_logger
from service.core.settings import Settings
from service.db.postgres import Pool
from service.runtime.health import Check, Drain, Heartbeat, bus_check, database_check, start_health_server
from service.runtime.pools import new_bus, pool_from, start_patiently
from service.runtime.serving import serving

log = get_logger("service.runtime.stopping")


class RoleRunner(Protocol):
    async def run(self) -> None: ...

    def request_stop(self) -> None: ...


async def pause(drain: Drain, settings: Settings, process: str) -> None:
    """Fail readiness, then keep going for the configured pause."""
    drain.begin()
    log.info("draining", process=process, pause_s=settings.shutdown_pause_s)
    await asyncio.sleep(settings.shutdown_pause_s)


async def serve_gateway(app: web.Application, drain: Drain, settings: Settings, stop: asyncio.Event) -> None:
    """Serve the gateway until `stop`, then drain it in the order above."""
    timeout_s = settings.shutdown_timeout_s
    async with serving(
        app, settings.host, settings.port, shutdown_timeout_s=timeout_s, backlog=settings.listen_backlog
    ) as url:
        log.info("gateway_listening", url=url)
        await stop.wait()
        await pause(drain, settings, "gateway")
        log.info("gateway_stopping", timeout_s=timeout_s)
    log.info("gateway_stopped")


@dataclass
class Dependencies:
    """What a role's readiness checks look at; empty until each is open."""

    pool: Pool | None = None
    bus: Bus | None = None
    dsn: str | None = None  # for a probe that does not queue behind a saturated pool

    def checks(self) -> dict[str, Check]:
        async def database() -> bool:
            return self.pool is not None and await database_check(self.pool, self.dsn)()

        async def kafka() -> bool:
            return self.bus is not None and await bus_check(self.bus)()

        return {"database": database, "kafka": kafka}


RoleFactory = Callable[[Pool, Bus, Heartbeat], RoleRunner]


async def serve_role(
    settings: Settings, name: str, build: RoleFactory, stop: asyncio.Event, fetch: FetchPolicy | None = None
) -> None:
    """Run one role beside its health server until a signal (or until the role itself ends),
    then drain it. The health server comes first: while PostgreSQL or Kafka is still out of
    reach the process is alive and not ready, and it becomes ready when they answer. `fetch`
    is the role's own fetch policy (None: the settings')."""
    dsn = None if settings.database_url is None else settings.database_url.get_secret_value()
    heartbeat, drain, deps = Heartbeat(), Drain(), Dependencies(dsn=dsn)
    beats = {name: heartbeat}
    health = await start_health_server(settings.host, settings.health_port, beats, deps.checks(), drain)
    try:
        async with pool_from(settings) as pool:
            deps.pool = pool
            bus = new_bus(settings, f"agent-eval-{name}", fetch)
            if not await start_patiently(bus, stop, heartbeat):
                return
            deps.bus = bus
            try:
                await run_role(settings, build(pool, bus, heartbeat), drain, stop)
            finally:
                await bus.stop()
    finally:
        await health.cleanup()


async def run_role(settings: Settings, runner: RoleRunner, drain: Drain, stop: asyncio.Event) -> None:
    """Run until `stop` (or until the role itself ends), then drain in the order above."""
    task = asyncio.create_task(runner.run())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not task.done():
        await pause(drain, settings, "role")
    runner.request_stop()
    await task
