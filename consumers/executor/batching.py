"""Group commit (issue 16): writes that conversations hand over while the batches in flight are
being written wait together, and the next transaction writes all of them — one round trip
(rounds) or one commit and one flush (endings) for many conversations instead of one each. A
write handed over while a lane is free is written at once, so nothing waits for a timer.

`Batcher` is the queue and its flushing tasks, at most `LANES` at once: while one batch waits on
its round trips or its commit, the next can be on its way (batches hold disjoint runs and lock
rows in one order, so they never wait on each other in a cycle). What a batch does is its
`write_all`, which answers each run of the batch with its outcome or its own failure. A failure
of `write_all` itself fails every write of that batch alike; each conversation then does what it
does after any failed write (it resumes from the persisted transcript). `RoundBatcher` writes
the common rounds in one statement (`service.db.rounds.persist_rounds`), so a failed statement
wrote nothing of them.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from service.db import rounds
from service.db.claims import Lease
from service.db.postgres import Pool, connection

MAX_BATCH = 64  # writes per batch: bounds the statement's size and its locks
LANES = 2  # batches in flight at once: one fills while another waits on a round trip or a commit


class Leased(Protocol):
    @property
    def lease(self) -> Lease: ...


P = TypeVar("P", bound=Leased)
R = TypeVar("R")


@dataclass
class _Waiting(Generic[P, R]):
    item: P
    written: asyncio.Future[R | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def run_id(self) -> UUID:
        return self.item.lease.run_id


class Batcher(Generic[P, R]):
    """Writes the items handed to it, batched; at most `lanes` batches in flight at once."""

    def __init__(
        self,
        # A batch's answers by run: its outcome, or the failure that is its own; a run left out
        # was not written (a round: its lease no longer holds, or a cancel was requested).
        write_all: Callable[[list[P]], Awaitable[Mapping[UUID, R | Exception]]],
        *,
        max_batch: int = MAX_BATCH,
        lanes: int = LANES,
        name: str,
    ) -> None:
        self._write_all = write_all
        self._max_batch = max_batch
        self._lanes = lanes
        self._name = name
        self._waiting: list[_Waiting[P, R]] = []
        self._flushers: set[asyncio.Task[None]] = set()

    async def write(self, item: P) -> R | None:
        """The run's outcome, None when its write was left out, or its failure raised."""
        waiting: _Waiting[P, R] = _Waiting(item)
        self._waiting.append(waiting)
        if len(self._flushers) < self._lanes:
            # A context of its own: log lines of the flush belong to no one conversation.
            flusher = asyncio.create_task(self._flush(), name=self._name, context=contextvars.Context())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await waiting.written  # a conversation cancelled meanwhile is left out, if not yet taken

    async def _flush(self) -> None:
        while self._waiting:
            batch = take_batch(self._waiting, self._max_batch)
            try:
                outcomes = await self._write_all([w.item for w in batch])
            except asyncio.CancelledError:
                for waiting in batch:
                    waiting.written.cancel()
                raise
            except Exception as exc:  # every write of the batch failed alike; each caller decides
                for waiting in batch:
                    _settle(waiting, exc)
                continue
            for waiting in batch:
                _settle(waiting, outcomes.get(waiting.run_id))


def take_batch(waiting: list[_Waiting[P, R]], limit: int) -> list[_Waiting[P, R]]:
    """Remove and return up to `limit` writes, oldest first, at most one per run (a run's next
    write waits for the next batch, so its rows stay in order)."""
    batch: list[_Waiting[P, R]] = []
    runs: set[UUID] = set()
    kept: list[_Waiting[P, R]] = []
    for item in waiting:
        if item.written.done():  # its conversation was cancelled before the write: leave it out
            continue
        if len(batch) < limit and item.run_id not in runs:
            batch.append(item)
            runs.add(item.run_id)
        else:
            kept.append(item)
    waiting[:] = kept
    return batch


def _settle(waiting: _Waiting[P, R], outcome: R | Exception | None) -> None:
    if waiting.written.done():
        return
    if isinstance(outcome, Exception):
        waiting.written.set_exception(outcome)
    else:
        waiting.written.set_result(outcome)


class RoundBatcher(Batcher[rounds.PendingRound, rounds.Round]):
    """The common rounds: one statement for the batch (autocommit: one commit for all of them)."""

    def __init__(self, pool: Pool, max_batch: int = MAX_BATCH) -> None:
        async def write_all(batch: list[rounds.PendingRound]) -> Mapping[UUID, rounds.Round | Exception]:
            async with connection(pool) as conn:
                return await rounds.persist_rounds(conn, batch)

        super().__init__(write_all, max_batch=max_batch, name="round-batcher")
