"""A role in child processes on the parent's in-process bus: `agent-eval dev --executor-processes N`.

The parent (`BridgedChildren`, one of dev's role runners) starts N supervised children, each
`agent-eval consume <role> --supervised --bridge-fd FD` with one end of a socket pair, and serves
its bus to each over the other end (`service.bus.bridge`). A child (`serve_bridged_role`) asks
for its settings first (the parent's, with the child's share of the pool and the conversation
budget), opens its own database pool and runs the role as any role process does; it writes runs,
turns and outbox rows to PostgreSQL itself, and the parent's relay publishes them. A child that
dies is restarted (`service.runtime.children`); what it had not committed goes to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Sequence

from service.bus.bridge import BridgeServer
from service.bus.bridged import BridgedBus
from service.bus.interface import Bus
from service.core.errors import ChildrenFailed, SettingsError
from service.core.settings import Settings
from service.db.postgres import Pool
from service.runtime.children import Launched, Supervisor, spawn
from service.runtime.health import Drain
from service.runtime.pools import pool_from
from service.runtime.processes import budget
from service.runtime.stopping import RoleRunner, run_role

BRIDGE_FD = "--bridge-fd"
BridgedFactory = Callable[[Settings, Pool, Bus], RoleRunner]


class BridgedChildren:
    """A role runner whose role runs in `count` child processes (`argv`, without the bridge)."""

    def __init__(self, settings: Settings, bus: Bus, name: str, count: int, argv: Sequence[str]) -> None:
        self._bus = bus
        self._argv = list(argv)
        self._child_settings = settings.model_copy(update=budget(settings, count))
        self._supervisor = Supervisor(f"dev-{name}", count, self._launch)
        self._halt = asyncio.Event()

    async def run(self) -> None:
        if not await self._supervisor.run(self._halt):
            raise ChildrenFailed(f"{self._supervisor.name}: a child process kept dying")

    def request_stop(self) -> None:
        self._halt.set()

    async def _launch(self, _: int) -> Launched:
        parent, child = socket.socketpair()
        try:
            process = await spawn([*self._argv, BRIDGE_FD, str(child.fileno())], pass_fds=(child.fileno(),))
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent)
        server = BridgeServer(self._bus, reader, writer, self._child_settings)
        serving = asyncio.create_task(server.run(), name="bus-bridge")

        async def release() -> None:
            await server.aclose()
            await serving

        return Launched(process, release)


async def serve_bridged_role(fd: int, build: BridgedFactory, stop: asyncio.Event) -> None:
    """Run one role on the parent's bus over socket `fd` until `stop` or until the parent is
    gone, then drain it as any role process does."""
    reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=fd))
    bus = BridgedBus(reader, writer)
    await bus.start()
    try:
        settings = await bus.greeting()
        if not isinstance(settings, Settings):
            raise SettingsError("the parent process sent no settings over the bus bridge")
        halt = asyncio.Event()
        watch = asyncio.create_task(_first_of(stop, bus.closed, into=halt))
        try:
            async with pool_from(settings) as pool:
                await run_role(settings, build(settings, pool, bus), Drain(), halt)
        finally:
            watch.cancel()
    finally:
        await bus.stop()


async def _first_of(*events: asyncio.Event, into: asyncio.Event) -> None:
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        into.set()
    finally:
        for wait in waits:
            wait.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waits, return_exceptions=True)
