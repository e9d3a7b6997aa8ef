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
from uuid import UUID

from service.core.errors import DatabaseError
from service.core.logging import get_logger
from service.core.metrics import RUN_WAITERS
from service.db import runs
from service.db.postgres import Pool, connection
from service.gateway.watching import Watchers

log = get_logger("service.gateway.waiters")


class RunWaiters(Watchers):
    def __init__(self, dsn: str, pool: Pool, *, poll_s: float) -> None:
        super().__init__(dsn, RUN_WAITERS, channel=runs.DONE_CHANNEL, name="agent-eval-waiters")
        self._pool = pool
        self._poll_s = poll_s

    def notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        try:
            run_id = UUID(str(payload))
        except ValueError:
            return
        self.wake(run_id)

    async def safety_net(self) -> None:
        """Wake the waiters of every waited run that is done."""
        while not self.closing:
            await asyncio.sleep(self._poll_s)
            waited = self.watched()
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
