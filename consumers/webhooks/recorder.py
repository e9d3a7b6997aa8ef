"""Recording webhook attempts in batches: each finished attempt waits a moment (at most
`FLUSH_S`) for others, and one statement logs them all, moves their deliveries on and keeps their
endpoints' failure clocks. At hundreds of attempts a second that is one round trip per batch
instead of one per attempt; an attempt alone is written at once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from service.core.errors import DatabaseError, DatabaseUnavailable
from service.core.logging import get_logger
from service.db import deliveries
from service.db.postgres import Pool, connection

log = get_logger("consumers.webhooks.recorder")
FLUSH_S = 0.002  # how long the first attempt of a batch waits for company
MAX_BATCH = 200
RETRY_S = 0.5


@dataclass(frozen=True)
class Pending:
    entry: deliveries.AttemptEntry
    done: asyncio.Future[deliveries.Recorded | None]


class Recorder:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()

    async def record(self, entry: deliveries.AttemptEntry) -> deliveries.Recorded | None:
        """Write the attempt (with others); the delivery's new state, or None when it was no
        longer pending."""
        done: asyncio.Future[deliveries.Recorded | None] = asyncio.get_running_loop().create_future()
        await self._queue.put(Pending(entry, done))
        return await done

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches until stopped and every queued attempt is written."""
        while not (stop.is_set() and self._queue.empty()):
            batch = await self._next_batch(stop)
            if batch:
                await self._write(batch)

    async def _next_batch(self, stop: asyncio.Event) -> list[Pending]:
        if self._queue.empty():
            getter = asyncio.ensure_future(self._queue.get())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([getter, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not getter.done():
                getter.cancel()
                return []
            first = [getter.result()]
        else:
            first = [self._queue.get_nowait()]
        await asyncio.sleep(FLUSH_S)
        batch = first
        while len(batch) < MAX_BATCH and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _write(self, batch: list[Pending]) -> None:
        """One statement for the batch. A lost connection is waited out (if that outlasts a
        claim's lease, another notifier sends the delivery again: at least once, never lost)."""
        while True:
            try:
                async with connection(self._pool) as conn:
                    results = await deliveries.record_attempts(conn, [p.entry for p in batch])
                break
            except DatabaseUnavailable as exc:
                log.warning("webhook_record_failed", error=str(exc), attempts=len(batch))
                await asyncio.sleep(RETRY_S)
            except DatabaseError as exc:
                if len(batch) > 1:  # one bad row must not sink the others: write them one by one
                    for pending in batch:
                        await self._write([pending])
                    return
                _settle(batch[0].done, exc)
                return
        for pending in batch:
            _settle(pending.done, results.get(pending.entry.delivery_id))


def _settle(done: asyncio.Future[deliveries.Recorded | None], outcome: object) -> None:
    if done.done():
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome if isinstance(outcome, deliveries.Recorded) else None)
