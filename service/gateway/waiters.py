"""Blocked requests waiting for runs to be done (DESIGN.md §3 Blocking trigger).

One dedicated connection per gateway process LISTENs on `agent_eval_runs`; a notification wakes
the waiters of that run, which re-read the row. Notifications can be lost (a dropped listener
connection, a gateway restart), so every `poll_s` one query asks which of all the waited runs
are done and wakes those too: a lost notification only delays an answer. Thousands of waiters
cost one event each and no connection while they wait. On shutdown every waiter is woken at
once and answered with what it has (202).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from uuid import UUID

from service.core.errors import DatabaseError
from service.core.logging import get_logger
from service.core.metrics import RUN_WAITERS
from service.db import runs
from service.db.postgres import Connection, Pool, connection
from service.gateway.watching import RunWatch, listen_forever

log = get_logger("service.gateway.waiters")


class RunWaiters:
    def __init__(self, dsn: str, pool: Pool, *, poll_s: float) -> None:
        self._dsn = dsn
        self._pool = pool
        self._poll_s = poll_s
        self._watch = RunWatch(RUN_WAITERS)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def closing(self) -> bool:
        return self._watch.closing.is_set()

    async def start(self) -> None:
        listening = listen_forever(
            self._dsn, runs.DONE_CHANNEL, self._on_notify, self._watch.closing, "agent-eval-waiters"
        )
        self._tasks = [
            asyncio.create_task(listening, name="run-waiters-listen"),
            asyncio.create_task(self._poll(), name="run-waiters-poll"),
        ]

    def shut(self) -> None:
        """Answer every waiter now (the gateway is stopping); later waits return at once."""
        self._watch.shut()

    async def close(self) -> None:
        self.shut()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @contextlib.contextmanager
    def watch(self, run_id: UUID) -> Iterator[asyncio.Event]:
        """An event set whenever `run_id` may have become done (or the gateway is stopping)."""
        with self._watch.watch(run_id) as event:
            yield event

    def wake(self, run_id: UUID) -> None:
        self._watch.wake(run_id)

    def _on_notify(self, _conn: Connection, _pid: int, _channel: str, payload: object) -> None:
        try:
            run_id = UUID(str(payload))
        except ValueError:
            return
        self.wake(run_id)

    async def _poll(self) -> None:
        """The safety net: wake the waiters of every waited run that is done."""
        while not self.closing:
            await asyncio.sleep(self._poll_s)
            waited = self._watch.watched()
            if not waited:
                continue
            try:
                async with connection(self._pool) as conn:
                    done = await runs.done_among(conn, waited)
            except DatabaseError as exc:
                log.warning("run_waiters_poll_failed", error=str(exc))
                continue
            for run_id in done:
                self.wake(run_id)
