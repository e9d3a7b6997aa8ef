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
from service.db.postgres import Connection, Pool, close_quietly, connect, connection, listen

log = get_logger("service.gateway.waiters")
RECONNECT_S = 1.0


class RunWaiters:
    def __init__(self, dsn: str, pool: Pool, *, poll_s: float) -> None:
        self._dsn = dsn
        self._pool = pool
        self._poll_s = poll_s
        self._waiting: dict[UUID, set[asyncio.Event]] = {}
        self._closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="run-waiters-listen"),
            asyncio.create_task(self._poll(), name="run-waiters-poll"),
        ]

    def shut(self) -> None:
        """Answer every waiter now (the gateway is stopping); later waits return at once."""
        self._closing.set()
        for events in self._waiting.values():
            for event in events:
                event.set()

    async def close(self) -> None:
        self.shut()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @contextlib.contextmanager
    def watch(self, run_id: UUID) -> Iterator[asyncio.Event]:
        """An event set whenever `run_id` may have become done (or the gateway is stopping)."""
        event = asyncio.Event()
        if self._closing.is_set():
            event.set()
        self._waiting.setdefault(run_id, set()).add(event)
        RUN_WAITERS.inc()
        try:
            yield event
        finally:
            RUN_WAITERS.dec()
            events = self._waiting.get(run_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiting[run_id]

    def wake(self, run_id: UUID) -> None:
        for event in self._waiting.get(run_id, ()):
            event.set()

    def _on_notify(self, _conn: Connection, _pid: int, _channel: str, payload: object) -> None:
        try:
            run_id = UUID(str(payload))
        except ValueError:
            return
        self.wake(run_id)

    async def _listen(self) -> None:
        """Keep one LISTEN connection open, reconnecting after failures."""
        while not self._closing.is_set():
            try:
                await self._listen_once()
            except DatabaseError as exc:
                log.warning("run_waiters_listen_failed", error=str(exc))
            except Exception:  # never let the listener die: the poller alone would be slow
                log.exception("run_waiters_listen_crashed")
            await asyncio.sleep(RECONNECT_S)

    async def _listen_once(self) -> None:
        """LISTEN on one connection until it is lost or the waiters close."""
        conn = await connect(self._dsn, application_name="agent-eval-waiters")
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _: lost.set())
            await listen(conn, runs.DONE_CHANNEL, self._on_notify)
            log.info("run_waiters_listening")
            await first_set(lost, self._closing)
        finally:
            await close_quietly(conn)

    async def _poll(self) -> None:
        """The safety net: wake the waiters of every waited run that is done."""
        while not self._closing.is_set():
            await asyncio.sleep(self._poll_s)
            waited = list(self._waiting)
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


async def first_set(*events: asyncio.Event) -> None:
    """Return once any of `events` is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
