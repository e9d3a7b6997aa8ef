"""What the gateway's waiters (blocked requests) and event streams share: requests watching runs,
each holding an event that is set when its run may have changed, and one dedicated PostgreSQL
connection per process LISTENing on a channel, reconnecting after failures (a notification lost
meanwhile only delays an answer: both re-read the truth on a timer too)."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from uuid import UUID

from prometheus_client import Gauge

from service.core.errors import DatabaseError
from service.core.logging import get_logger
from service.db.postgres import Notified, close_quietly, connect, listen

log = get_logger("service.gateway.watching")
RECONNECT_S = 1.0


class RunWatch:
    """Events by run id; `shut` sets them all, and every later watch starts set."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._watching: dict[UUID, set[asyncio.Event]] = {}
        self.closing = asyncio.Event()

    def watched(self) -> list[UUID]:
        return list(self._watching)

    @contextlib.contextmanager
    def watch(self, run_id: UUID) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        if self.closing.is_set():
            event.set()
        self._watching.setdefault(run_id, set()).add(event)
        self._gauge.inc()
        try:
            yield event
        finally:
            self._gauge.dec()
            events = self._watching.get(run_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._watching[run_id]

    def wake(self, run_id: UUID) -> None:
        for event in self._watching.get(run_id, ()):
            event.set()

    def shut(self) -> None:
        self.closing.set()
        for events in self._watching.values():
            for event in events:
                event.set()


class Watchers(ABC):
    """A gateway's watchers of runs: the registry, one LISTEN loop on `channel` whose
    notifications go to `notified`, and one loop of the subclass's `safety_net` (the timer
    that re-reads the truth). `shut` wakes every watcher; `close` also stops the loops."""

    def __init__(self, dsn: str, gauge: Gauge, *, channel: str, name: str) -> None:
        self._dsn = dsn
        self._channel = channel
        self._name = name
        self._watch = RunWatch(gauge)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def closing(self) -> bool:
        return self._watch.closing.is_set()

    async def start(self) -> None:
        listening = listen_forever(self._dsn, self._channel, self.notified, self._watch.closing, self._name)
        self._tasks = [
            asyncio.create_task(listening, name=f"{self._name}-listen"),
            asyncio.create_task(self.safety_net(), name=f"{self._name}-timer"),
        ]

    def shut(self) -> None:
        """Wake every watcher now (the gateway is stopping); later watches start woken."""
        self._watch.shut()

    async def close(self) -> None:
        self.shut()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @contextlib.contextmanager
    def watch(self, run_id: UUID) -> Iterator[asyncio.Event]:
        with self._watch.watch(run_id) as event:
            yield event

    def wake(self, run_id: UUID) -> None:
        self._watch.wake(run_id)

    def watched(self) -> list[UUID]:
        return self._watch.watched()

    @abstractmethod
    def notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        """A NOTIFY on the channel arrived."""

    @abstractmethod
    async def safety_net(self) -> None:
        """Runs until the watchers close."""


async def listen_forever(
    dsn: str, channel: str, notified: Notified, closing: asyncio.Event, name: str
) -> None:
    """Keep one LISTEN connection on `channel` open until `closing`, reconnecting after failures."""
    while not closing.is_set():
        try:
            await _listen_once(dsn, channel, notified, closing, name)
        except DatabaseError as exc:
            log.warning("listen_failed", channel=channel, error=str(exc))
        except Exception:  # never let the listener die: the timer alone would be slow
            log.exception("listen_crashed", channel=channel)
        await asyncio.sleep(RECONNECT_S)


async def _listen_once(dsn: str, channel: str, notified: Notified, closing: asyncio.Event, name: str) -> None:
    conn = await connect(dsn, application_name=name)
    lost = asyncio.Event()
    try:
        conn.add_termination_listener(lambda _: lost.set())
        await listen(conn, channel, notified)
        log.info("listening", channel=channel)
        await _first_set(lost, closing)
    finally:
        await close_quietly(conn)


async def _first_set(*events: asyncio.Event) -> None:
    """Return once any of `events` is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
