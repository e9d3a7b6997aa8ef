"""The run pipeline in this process: the relay (with maintenance) and the consumer roles on a
bus (in-process or Kafka), sharing the test's pool, as `agent-eval dev` runs them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from consumers.launch import RunningRole, running_role
from consumers.maintenance import maintenance_jobs, run_scheduler
from consumers.registry import ROLES
from consumers.relay import Relay
from service.bus.interface import Bus
from service.bus.topics import topic_specs
from service.core.settings import Settings
from service.db.postgres import Pool

ALL_ROLES = ("executor", "scorer", "biller", "notifier")


@contextlib.asynccontextmanager
async def pipeline(
    settings: Settings,
    pool: Pool,
    bus: Bus,
    *,
    roles: Sequence[str] = ALL_ROLES,
    maintenance: bool = False,
) -> AsyncIterator[list[RunningRole]]:
    """Run the relay and `roles` until the block ends (topics are created first)."""
    await bus.create_topics(topic_specs(settings.topic_prefix, settings.topic_partitions, 1))
    stop = asyncio.Event()
    running = [running_role(ROLES[name], settings, pool, bus, None) for name in roles]
    relay = Relay(
        settings,
        bus,
        maintenance=(lambda halt: run_scheduler(maintenance_jobs(pool, settings, bus=bus), halt))
        if maintenance
        else None,
    )
    tasks = [asyncio.create_task(relay.run(stop), name="relay")]
    tasks += [asyncio.create_task(role.run(), name=f"role-{role.runner}") for role in running]
    try:
        for role in running:
            await asyncio.wait_for(role.runner.started.wait(), 30)
        yield running
    finally:
        stop.set()
        for role in running:
            role.request_stop()
        await asyncio.gather(*tasks)
