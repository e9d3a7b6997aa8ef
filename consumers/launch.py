"""Turning a role into a running process part: a consumer role's runner, configured from
settings, and cleanup; the relay with its maintenance jobs, in the same shape."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass

from consumers.maintenance import maintenance_jobs, run_scheduler
from consumers.relay import Relay
from consumers.role import Role, RoleContext
from consumers.runner import Beat, ConsumerRunner, RunnerConfig
from service.bus.interface import Bus
from service.bus.topics import topic_name
from service.core.settings import Settings
from service.db.postgres import Pool
from service.runtime.health import Heartbeat


@dataclass
class RunningRole:
    """A role's consumer loop plus whatever its handler holds open (model clients)."""

    runner: ConsumerRunner
    close: Callable[[], Awaitable[None]]
    stop: Callable[[], None]
    background: Callable[[], Coroutine[object, object, None]] | None = None

    async def run(self) -> None:
        beside = None if self.background is None else asyncio.create_task(self.background())
        try:
            await self.runner.run()
        finally:
            self.stop()
            if beside is not None:
                await beside
            await self.close()

    def request_stop(self) -> None:
        self.stop()
        self.runner.request_stop()


def running_role(role: Role, settings: Settings, pool: Pool, bus: Bus, heartbeat: Beat | None) -> RunningRole:
    built = role.build(RoleContext(settings=settings, pool=pool, bus=bus))
    config = RunnerConfig(
        group=role.group(settings.topic_prefix),
        topics=[topic_name(settings.topic_prefix, t) for t in role.topics],
        types=frozenset(role.types),
        commit_interval_s=settings.consumer_commit_interval_ms / 1000,
        commit_batch=settings.consumer_commit_batch,
        handler_attempts=settings.consumer_handler_attempts,
        retry_base_s=settings.consumer_retry_base_s,
        chunk=role.chunk,
    )
    runner = ConsumerRunner(bus, config, built.handler, gate=built.gate, heartbeat=heartbeat)
    return RunningRole(runner, built.close, built.stop, built.background)


class RunningRelay:
    """The relay and, while it leads, the maintenance jobs: started with `run`, stopped with
    `request_stop`, like a running consumer role."""

    def __init__(self, settings: Settings, pool: Pool, bus: Bus, heartbeat: Heartbeat | None = None) -> None:
        self._stop = asyncio.Event()
        self.relay = Relay(
            settings,
            bus,
            heartbeat=heartbeat,
            maintenance=lambda halt: run_scheduler(maintenance_jobs(pool, settings, bus=bus), halt),
        )

    async def run(self) -> None:
        await self.relay.run(self._stop)

    def request_stop(self) -> None:
        self._stop.set()
