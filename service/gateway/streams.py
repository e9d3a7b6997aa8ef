"""Live run-event streams (SSE) woken by PostgreSQL, never by Kafka (DESIGN.md §1).

One dedicated connection per gateway LISTENs on the outbox channel, which every statement that
writes events notifies. A notification marks the streams dirty; at most every `TICK_S` one
query reads the latest event sequence of every streamed run, and only the streams whose run
moved are woken (each then reads its new events from the outbox, the event store). Every
`poll_s` the same check runs anyway, so a lost notification only delays events. On shutdown
every stream is woken and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from uuid import UUID

from service.core.errors import DatabaseError
from service.core.logging import get_logger
from service.core.metrics import EVENT_STREAMS
from service.db import outbox, runs
from service.db.postgres import Pool, close_quietly, connect, connection, listen
from service.gateway.waiters import first_set

log = get_logger("service.gateway.streams")
TICK_S = 0.05  # notifications are coalesced into one check this often at most
RECONNECT_S = 1.0


class RunStreams:
    def __init__(self, dsn: str, pool: Pool, *, poll_s: float) -> None:
        self._dsn = dsn
        self._pool = pool
        self._poll_s = poll_s
        self._watching: dict[UUID, set[asyncio.Event]] = {}
        self._seen: dict[UUID, int] = {}
        self._dirty = asyncio.Event()
        self._closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="run-streams-listen"),
            asyncio.create_task(self._check(), name="run-streams-check"),
        ]

    def shut(self) -> None:
        """Wake every stream to close (the gateway is stopping)."""
        self._closing.set()
        for events in self._watching.values():
            for event in events:
                event.set()

    async def close(self) -> None:
        self.shut()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @contextlib.contextmanager
    def watch(self, run_id: UUID) -> Iterator[asyncio.Event]:
        """An event set whenever the run may have new events (or the gateway is stopping)."""
        event = asyncio.Event()
        if self._closing.is_set():
            event.set()
        self._watching.setdefault(run_id, set()).add(event)
        EVENT_STREAMS.inc()
        try:
            yield event
        finally:
            EVENT_STREAMS.dec()
            events = self._watching.get(run_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._watching[run_id]
                    self._seen.pop(run_id, None)

    def _on_notify(self, *_: object) -> None:
        if self._watching:
            self._dirty.set()

    async def _listen(self) -> None:
        """Keep one LISTEN connection open, reconnecting after failures."""
        while not self._closing.is_set():
            try:
                await self._listen_once()
            except DatabaseError as exc:
                log.warning("run_streams_listen_failed", error=str(exc))
            await asyncio.sleep(RECONNECT_S)

    async def _listen_once(self) -> None:
        conn = await connect(self._dsn, application_name="agent-eval-streams")
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _: lost.set())
            await listen(conn, outbox.NOTIFY_CHANNEL, self._on_notify)
            await first_set(lost, self._closing)
        finally:
            await close_quietly(conn)

    async def _check(self) -> None:
        """Wake the streams whose run has events they may not have seen."""
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self._poll_s)
            self._dirty.clear()
            watched = list(self._watching)
            if watched:
                await self._wake_moved(watched)
            await asyncio.sleep(TICK_S)

    async def _wake_moved(self, watched: list[UUID]) -> None:
        try:
            async with connection(self._pool) as conn:
                latest = await runs.last_event_sequences(conn, watched)
        except DatabaseError as exc:
            log.warning("run_streams_check_failed", error=str(exc))
            return
        for run_id, sequence in latest.items():
            if sequence != self._seen.get(run_id):
                self._seen[run_id] = sequence
                for event in self._watching.get(run_id, ()):
                    event.set()
