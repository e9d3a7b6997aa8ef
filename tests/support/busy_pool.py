"""A pool kept saturated, as an executor playing all it can or a gateway holding thousands of
waiters keeps it: more tasks than connections, each holding one for a while, so a newcomer
queues for seconds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from service.db.postgres import Pool, connection
from tests.support.waiting import eventually


@contextlib.asynccontextmanager
async def saturated(pool: Pool, *, workers: int = 200, hold_s: float = 0.05) -> AsyncIterator[None]:
    """Run `workers` tasks that each hold a pooled connection `hold_s` at a time, back to back,
    until the block ends; it starts once every connection of the pool is open and in use."""
    stop = asyncio.Event()

    async def work() -> None:
        while not stop.is_set():
            async with connection(pool) as conn:
                if not stop.is_set():  # once stopping, the queue drains at once
                    await conn.execute("SELECT pg_sleep($1)", hold_s)

    tasks = [asyncio.create_task(work()) for _ in range(workers)]

    async def full() -> bool:
        return pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size()

    try:
        await eventually(full, what="a saturated pool")
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)
