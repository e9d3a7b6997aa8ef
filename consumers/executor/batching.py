"""Group commit of the common rounds (issue 16): conversations that finish a round while the
previous batch is being written wait together, and the next statement writes all of their rounds
(`service.db.rounds.persist_rounds`) — one round trip and one commit for many conversations
instead of one each. A conversation alone is written at once, so nothing waits for a timer.

A failed statement fails every round in it with the same error; each conversation then does what
it does after any failed write (it resumes from the persisted transcript), and nothing of that
batch was written (one statement, one transaction).
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field

from service.db import rounds
from service.db.postgres import Pool, connection

MAX_BATCH = 64  # rounds per statement: bounds the statement's size and its locks


@dataclass
class _Waiting:
    round: rounds.PendingRound
    written: asyncio.Future[rounds.Round | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class RoundBatcher:
    """Writes the rounds handed to it, batched; one flush in flight at a time per process."""

    def __init__(self, pool: Pool, max_batch: int = MAX_BATCH) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, pending: rounds.PendingRound) -> rounds.Round | None:
        """The round as written, or None when its lease no longer holds or a cancel was requested
        (then nothing of it was written)."""
        waiting = _Waiting(pending)
        self._waiting.append(waiting)
        if self._flusher is None or self._flusher.done():
            # A context of its own: log lines of the flush belong to no one conversation.
            flushing = self._flush()
            self._flusher = asyncio.create_task(flushing, name="round-batcher", context=contextvars.Context())
        return await waiting.written  # a conversation cancelled meanwhile is left out, if not yet taken

    async def _flush(self) -> None:
        while self._waiting:
            batch = take_batch(self._waiting, self._max_batch)
            try:
                async with connection(self._pool) as conn:
                    written = await rounds.persist_rounds(conn, [w.round for w in batch])
            except asyncio.CancelledError:
                for waiting in batch:
                    waiting.written.cancel()
                raise
            except Exception as exc:  # every round of the statement failed alike; each caller decides
                for waiting in batch:
                    _settle(waiting, exc)
                continue
            for waiting in batch:
                _settle(waiting, written.get(waiting.round.lease.run_id))


def take_batch(waiting: list[_Waiting], limit: int) -> list[_Waiting]:
    """Remove and return up to `limit` rounds, oldest first, at most one per run (a run's next
    round waits for the next batch, so its rows stay in order)."""
    batch: list[_Waiting] = []
    runs: set[object] = set()
    kept: list[_Waiting] = []
    for item in waiting:
        run_id = item.round.lease.run_id
        if item.written.done():  # its conversation was cancelled before the write: leave it out
            continue
        if len(batch) < limit and run_id not in runs:
            batch.append(item)
            runs.add(run_id)
        else:
            kept.append(item)
    waiting[:] = kept
    return batch


def _settle(waiting: _Waiting, outcome: rounds.Round | Exception | None) -> None:
    if waiting.written.done():
        return
    if isinstance(outcome, Exception):
        waiting.written.set_exception(outcome)
    else:
        waiting.written.set_result(outcome)
