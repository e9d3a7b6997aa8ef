"""The clients of the overload benchmark (`bench.overload`): runs offered N at a time, each a
blocking trigger then polls until done, what the clients saw go wrong, and a watch that gives up
as soon as a process of the stack dies."""

from __future__ import annotations

import argparse
import asyncio
import errno
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Driven:
    """The clients' view: each finished run's trigger→done seconds, and what went wrong."""

    seconds: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def connection_error(exc: BaseException) -> str:
    """A client-side failure named as an operator would: reset, refused, timed out, …"""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "refused" if exc.os_error.errno == errno.ECONNREFUSED else f"connect: {exc.os_error}"
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno == errno.ECONNRESET:
        return "reset"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__


class Aborted(Exception):
    """A process of the stack died, or the load did not finish in time: no figures."""


async def watch(dead: Callable[[], str | None], deadline_s: float) -> None:
    """Raise `Aborted` as soon as `dead()` names a process that exited, or after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while True:
        await asyncio.sleep(1.0)
        if why := dead():
            raise Aborted(why)
        if time.monotonic() > deadline:
            raise Aborted(f"the runs were not all done after {deadline_s:g} s")


@dataclass
class Clients:
    """`runs` runs triggered by `offered` clients at a time; each client, in turn: a blocking POST
    (`Prefer: wait=60`), polls until the run is done, then its next run."""

    session: aiohttp.ClientSession
    trigger_url: str
    runs_url: str
    driven: Driven = field(default_factory=Driven)

    async def play(self, left: Iterator[int]) -> None:
        for _ in left:
            try:
                await self.one()
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.driven.errors[connection_error(exc)] += 1

    async def one(self) -> None:
        started = time.monotonic()
        async with self.session.post(self.trigger_url, json={}, headers={"Prefer": "wait=60"}) as response:
            if response.status >= 300:
                self.driven.errors[f"HTTP {response.status}"] += 1
                return
            run = await response.json()
        while run.get("queue_status") != "done":
            await asyncio.sleep(0.5)
            async with self.session.get(f"{self.runs_url}/{run['id']}") as response:
                run = await response.json()
        self.driven.seconds.append(time.monotonic() - started)


async def offer(
    base: str, key: str, case_id: str, args: argparse.Namespace, dead: Callable[[], str | None]
) -> Driven:
    """`args.runs` runs, `args.offered` at a time (`Clients`); `Aborted` when a process dies
    meanwhile (`dead`) or after `args.timeout` seconds."""
    left = iter(range(args.runs))
    timeout = aiohttp.ClientTimeout(total=900)
    connector = aiohttp.TCPConnector(limit=0)
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as session:
        clients = Clients(session, f"{base}/agent-eval/cases/{case_id}/run", f"{base}/agent-eval/runs")

        async def all_clients() -> None:
            await asyncio.gather(*(clients.play(left) for _ in range(args.offered)))

        load = asyncio.create_task(all_clients())
        watcher = asyncio.create_task(watch(dead, args.timeout))
        await asyncio.wait([load, watcher], return_when=asyncio.FIRST_COMPLETED)
        for task in (load, watcher):
            task.cancel()
        await asyncio.gather(load, watcher, return_exceptions=True)
        if not watcher.cancelled() and (error := watcher.exception()) is not None:
            raise error
    return clients.driven
