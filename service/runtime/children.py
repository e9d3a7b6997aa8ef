"""Keeping N child processes running: `agent-eval consume <role> --processes N` and the executor
processes of `agent-eval dev`.

Each slot runs one child at a time. A child that exits while the supervisor is not stopping is
restarted after a capped, doubling pause; a slot whose child died `restart_limit` times in a row,
each time sooner than `stable_s` after it started, gives up, and then every other child is
stopped too (the supervisor exits non-zero rather than limp on with part of its processes).

A child is told to stop by closing its stdin (`agent-eval consume --supervised` stops gracefully
on end of input); the same happens when the supervisor itself dies, so no child outlives it.
Children do not act on SIGINT or SIGTERM: the terminal's Ctrl-C reaches the whole process group,
and only the supervisor decides when (after its readiness drain) the children stop. A child is
born with both signals blocked (`spawn`), so a Ctrl-C while it is still starting (imports take a
second) cannot kill it either; it unblocks them once it ignores them
(`service.runtime.supervised`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.logging import get_logger
from service.runtime.pools import backoff_s

log = get_logger("service.runtime.children")

RESTART_LIMIT = 5
STABLE_S = 60.0
SHIELDED = frozenset({signal.SIGINT, signal.SIGTERM})  # blocked in a child until it ignores them


async def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    stdout: int | None = None,
) -> asyncio.subprocess.Process:
    """Start a supervised child with its stdin a pipe (closing it is "stop") and SIGINT and
    SIGTERM blocked: the mask is inherited through fork and exec. In this process they are
    blocked only for the call; one that arrives meanwhile is delivered when it returns."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SHIELDED)
    try:
        return await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=stdout, env=env, pass_fds=tuple(pass_fds)
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


async def _nothing() -> None:
    return None


@dataclass
class Launched:
    """A started child, and what to release once it exited (a bridge socket, a port)."""

    process: asyncio.subprocess.Process
    release: Callable[[], Awaitable[None]] = field(default=_nothing)


Launch = Callable[[int], Awaitable[Launched]]


class Supervisor:
    """Keeps `count` children running until `run`'s stop event is set (then stops them and
    waits for each to exit) or until one keeps dying."""

    def __init__(
        self,
        name: str,
        count: int,
        launch: Launch,
        *,
        restart_limit: int = RESTART_LIMIT,
        stable_s: float = STABLE_S,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = name
        self.count = count
        self._launch = launch
        self._restart_limit = restart_limit
        self._stable_s = stable_s
        self._clock = clock
        self._halt = asyncio.Event()
        self.running: dict[int, asyncio.subprocess.Process] = {}

    async def run(self, stop: asyncio.Event) -> bool:
        """Supervise until `stop`; False if a child kept dying (the others were stopped)."""
        relay = asyncio.create_task(self._halt_on(stop))
        try:
            kept = await asyncio.gather(*(self._keep(index) for index in range(self.count)))
        finally:
            relay.cancel()
        return all(kept)

    async def _halt_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._halt.set()

    async def _keep(self, index: int) -> bool:
        failures = 0
        while not self._halt.is_set():
            started = self._clock.monotonic()
            code = await self._run_once(index)
            if self._halt.is_set():
                return True
            failures = 1 if self._clock.monotonic() - started >= self._stable_s else failures + 1
            if failures >= self._restart_limit:
                log.error("child_keeps_dying", process=self.name, child=index, code=code, failures=failures)
                self._halt.set()
                return False
            pause_s = backoff_s(failures)
            log.warning("child_exited", process=self.name, child=index, code=code, restart_in_s=pause_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._halt.wait(), pause_s)
        return True

    async def _run_once(self, index: int) -> int:
        """Start the child, wait until it exits or the supervisor halts (then stop it)."""
        launched = await self._launch(index)
        process = launched.process
        self.running[index] = process
        log.info("child_started", process=self.name, child=index, pid=process.pid)
        try:
            exited = asyncio.create_task(process.wait())
            halted = asyncio.create_task(self._halt.wait())
            await asyncio.wait({exited, halted}, return_when=asyncio.FIRST_COMPLETED)
            halted.cancel()
            if not exited.done():
                _tell_stop(process)
            return await exited
        finally:
            self.running.pop(index, None)
            await launched.release()


def _tell_stop(process: asyncio.subprocess.Process) -> None:
    if process.stdin is not None:
        process.stdin.close()
