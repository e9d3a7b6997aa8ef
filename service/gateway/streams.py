"""Live event streams (SSE) woken by PostgreSQL, never by Kafka (DESIGN.md §1): a run's events,
and a suite run's ends.

One dedicated connection per gateway LISTENs on the outbox channel, which every statement that
writes events notifies. A notification marks the streams dirty; at most every `TICK_S` one
query reads the progress of every streamed subject (a run's latest event sequence, a suite
run's count of finished runs), and only the streams whose subject moved are woken (each then
reads what is new). Every `poll_s` the same check runs anyway, so a lost notification only
delays events. On shutdown every stream is woken and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from uuid import UUID

from service.core.errors import DatabaseError
from service.core.logging import get_logger
from service.core.metrics import EVENT_STREAMS
from service.db import outbox, runs, suite_runs
from service.db.postgres import Connection, Pool, connection
from service.gateway.watching import Watchers

log = get_logger("service.gateway.streams")
TICK_S = 0.05  # notifications are coalesced into one check this often at most


Progress = Callable[[Connection, list[UUID]], Awaitable[dict[UUID, int]]]


class ProgressStreams(Watchers):
    """Streams of subjects whose progress is a number that grows (`progress` reads it)."""

    def __init__(self, dsn: str, pool: Pool, *, poll_s: float, progress: Progress, name: str) -> None:
        super().__init__(dsn, EVENT_STREAMS, channel=outbox.NOTIFY_CHANNEL, name=name)
        self._pool = pool
        self._progress = progress
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
                latest = await self._progress(conn, watched)
        except DatabaseError as exc:
            log.warning("streams_check_failed", streams=self._name, error=str(exc))
            return
        for run_id, sequence in latest.items():
            if sequence != self._seen.get(run_id):
                self._seen[run_id] = sequence
                self.wake(run_id)


def run_streams(dsn: str, pool: Pool, *, poll_s: float) -> ProgressStreams:
    """Streams of runs' events: a run moves when its event sequence grows."""
    return ProgressStreams(
        dsn, pool, poll_s=poll_s, progress=runs.last_event_sequences, name="agent-eval-run-streams"
    )


def suite_run_streams(dsn: str, pool: Pool, *, poll_s: float) -> ProgressStreams:
    """Streams of suite runs: a suite run moves when another of its runs is done."""
    return ProgressStreams(
        dsn, pool, poll_s=poll_s, progress=suite_runs.done_counts, name="agent-eval-suite-streams"
    )
