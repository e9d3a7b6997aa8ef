"""Write many small things in one round trip: callers `submit` an item and wait; a loop takes
whatever arrived within `FLUSH_S` of the first (up to `MAX_BATCH`), hands the batch to one
writer call, and gives each caller its own answer. Alone, an item waits only `FLUSH_S`; under
load, one statement serves many. A lost connection is waited out; any other database error
makes the batch be written again one item at a time, so one bad item cannot sink the others."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from service.core.errors import DatabaseError, DatabaseUnavailable
from service.core.logging import get_logger

log = get_logger("consumers.webhooks.batching")
FLUSH_S = 0.002
MAX_BATCH = 200
RETRY_S = 0.5

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class _Pending(Generic[T, R]):
    item: T
    done: asyncio.Future[R]


class Batcher(Generic[T, R]):
    def __init__(self, name: str, write: Callable[[Sequence[T]], Awaitable[Sequence[R]]]) -> None:
        self._name = name
        self._write_batch = write  # one answer per item, in order
        self._queue: asyncio.Queue[_Pending[T, R]] = asyncio.Queue()

    async def submit(self, item: T) -> R:
        """Write `item` (with others) and return its answer."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(item, done))
        return await done

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches until `stop` is set and nothing is queued."""
        while not (stop.is_set() and self._queue.empty()):
            batch = await self._next_batch(stop)
            if batch:
                await self._write(batch)

    async def _next_batch(self, stop: asyncio.Event) -> list[_Pending[T, R]]:
        if self._queue.empty():
            getter = asyncio.ensure_future(self._queue.get())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([getter, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not getter.done():
                getter.cancel()
                return []
            batch = [getter.result()]
        else:
            batch = [self._queue.get_nowait()]
        await asyncio.sleep(FLUSH_S)
        while len(batch) < MAX_BATCH and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _write(self, batch: list[_Pending[T, R]]) -> None:
        while True:
            try:
                answers = await self._write_batch([p.item for p in batch])
                break
            except DatabaseUnavailable as exc:
                log.warning("batch_write_failed", batch=self._name, error=str(exc), size=len(batch))
                await asyncio.sleep(RETRY_S)
            except DatabaseError as exc:
                if len(batch) > 1:
                    for pending in batch:
                        await self._write([pending])
                    return
                _fail(batch, exc)
                return
            except Exception as exc:  # a bug: every caller learns of it, the loop goes on
                log.exception("batch_write_crashed", batch=self._name)
                _fail(batch, exc)
                return
        for pending, answer in zip(batch, answers, strict=True):
            if not pending.done.done():
                pending.done.set_result(answer)


def _fail(batch: Sequence[_Pending[T, R]], exc: BaseException) -> None:
    for pending in batch:
        if not pending.done.done():
            pending.done.set_exception(exc)
