"""`agent-eval consume <role> --processes N`: N ordinary role processes under one supervisor, so
one pod uses every core it is given (a Python process uses one).

Each child is `agent-eval consume <role> --supervised`: its own consumer-group member (the group
spreads the partitions over the children as over pods), its own database pool and its own
health server on a loopback port the supervisor picks. The pod's budgets are split among them:
each child gets `AGENT_EVAL_DB_POOL_MAX_SIZE / N` connections (at least 2, so the pod never
opens many more than configured) and `AGENT_EVAL_EXECUTOR_CONCURRENCY / N` conversations
(rounded up). The supervisor serves `/healthz`, `/readyz` and `/metrics` on the configured
health port (`service.runtime.fleet_health`).

Stopping: on SIGTERM/SIGINT readiness fails at once, the supervisor waits
`AGENT_EVAL_SHUTDOWN_PAUSE_S`, then tells every child to stop (each drains and hands back as a
single process does, without a pause of its own) and exits once all have. A child that dies is
restarted with backoff; one that keeps dying stops the rest and the supervisor exits 1.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import sys

from service.core.logging import get_logger
from service.core.settings import Settings
from service.runtime.children import Launched, Supervisor, spawn
from service.runtime.fleet_health import start_fleet_health
from service.runtime.health import Drain
from service.runtime.stopping import pause

log = get_logger("service.runtime.processes")

SUPERVISED = "--supervised"
LOOPBACK = "127.0.0.1"
MIN_POOL_SHARE = 2


def child_argv(role: str) -> list[str]:
    """The command of one supervised child: the ordinary role process."""
    return [sys.executable, "-m", "service.cli", "consume", role, "--processes", "1", SUPERVISED]


def budget(settings: Settings, count: int) -> dict[str, int | float]:
    """A child's share of the pod's connection pool and conversation budget (settings fields)."""
    pool_max = max(MIN_POOL_SHARE, settings.db_pool_max_size // count)
    return {
        "db_pool_max_size": pool_max,
        "db_pool_min_size": min(settings.db_pool_min_size, pool_max),
        "executor_concurrency": math.ceil(settings.executor_concurrency / count),
        "shutdown_pause_s": 0.0,  # the supervisor paused already
    }


def child_env(settings: Settings, count: int, health_port: int) -> dict[str, str]:
    """The supervisor's environment, with the child's budgets and its loopback health port."""
    local = {"AGENT_EVAL_HOST": LOOPBACK, "AGENT_EVAL_HEALTH_PORT": str(health_port)}
    shares = {f"AGENT_EVAL_{name.upper()}": str(value) for name, value in budget(settings, count).items()}
    return {**os.environ, **shares, **local}


def free_port() -> int:
    """A loopback port nothing listens on now (blocks: one bind). A child that loses it to a
    race fails to start and is restarted on another."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


async def serve_processes(settings: Settings, role: str, count: int, stop: asyncio.Event) -> bool:
    """Run `count` children of `role` until `stop`; False if one kept dying."""
    ports: dict[int, int] = {}
    drain = Drain()
    health = await start_fleet_health(settings.host, settings.health_port, count, ports, drain)

    async def launch(index: int) -> Launched:
        port = await asyncio.to_thread(free_port)
        process = await spawn(child_argv(role), env=child_env(settings, count, port))
        ports[index] = port

        async def release() -> None:
            ports.pop(index, None)

        return Launched(process, release)

    log.info("processes_starting", role=role, processes=count)
    try:
        return await _supervise(settings, Supervisor(f"consume-{role}", count, launch), drain, stop)
    finally:
        await health.cleanup()


async def _supervise(settings: Settings, supervisor: Supervisor, drain: Drain, stop: asyncio.Event) -> bool:
    halt = asyncio.Event()
    task = asyncio.create_task(supervisor.run(halt))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not task.done():
        await pause(drain, settings, supervisor.name)
    drain.begin()
    halt.set()
    kept = await task
    log.info("processes_stopped", process=supervisor.name, ok=kept)
    return kept
