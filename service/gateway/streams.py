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
from service.db.postgres import Pool, connection
from service.gateway.watching import Watchers

log = get_logger("service.gateway.streams")
TICK_S = 0.05  # notifications are coalesced into one check this often at most


class RunStreams(Watchers):
    def __init__(self, dsn: str, pool: Pool, *, poll_s: float) -> None:
        super().__init__(dsn, EVENT_STREAMS, channel=outbox.NOTIFY_CHANNEL, name="agent-eval-streams")
        self._pool = pool
        self._poll_s = poll_s
        self._seen: dict[UUID, int] = {}
        self._dirty = asyncio.Event()

    @contextlib.contextmanager
    def watch(self, run_id: UUID) -> Iterator[asyncio.Event]:
        """An event set whenever the run may have new events (or the gateway is stopping)."""
        try:
            with super().watch(run_id) as event:
                yield event
        finally:
            if run_id not in self.watched():
                self._seen.pop(run_id, None)

    def notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        if self.watched():
            self._dirty.set()

    async def safety_net(self) -> None:
        """Wake the streams whose run has events they may not have seen."""
        while not self.closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self._poll_s)
            self._dirty.clear()
            watched = self.watched()
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
                self.wake(run_id)
