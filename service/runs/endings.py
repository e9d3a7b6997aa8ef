"""What happens when a conversation ends, whoever ends it (the executor, a cancel before the
claim, the lost-executor sweep), and how freed slots go to held runs (DESIGN.md §3 Dispatch).

The end is announced in the transaction that makes the run terminal. The slot it frees is
handed on right after that commit: `fill_slots` releases under the company's dispatch lock,
taken inside one server-side statement, so it sees every committed end and every committed held
run and never holds the lock across a client round trip. Every change that can make a release possible (a run
created held, a released run ending) is followed by one, so none is missed; if a process dies
in between, the maintenance job releases what fits within seconds.
"""

from __future__ import annotations

from uuid import UUID

from service.db import dispatch, outbox, runs
from service.db.postgres import Connection, Pool, connection
from service.domain.lifecycle import TRANSITIONS, Step, end_event


async def announce_end(conn: Connection, run: runs.RunRow) -> None:
    """Emit the run's terminal event (in the transaction that made it terminal)."""
    await outbox.append_event(conn, run.id, end_event(run.status), run.summary())


async def announce_cancel_before_claim(conn: Connection, run: runs.RunRow) -> None:
    """A run cancelled before any executor claimed it is final at once: cancelled, then done."""
    summary = run.summary()
    events = [(event, summary) for event in TRANSITIONS[Step.CANCELLED_BEFORE_CLAIM].events]
    await outbox.append_events(conn, run.id, events)


async def fill_slots(pool: Pool, company_id: UUID, inflight_cap: int, *, after_end: bool) -> list[UUID]:
    """Release the company's held runs that fit now (call it after committing the change).
    After an end, a company with no held runs is left alone without taking its lock."""
    async with connection(pool) as conn:
        if after_end and not await dispatch.has_held_runs(conn, company_id):
            return []
        return await dispatch.release_held(conn, company_id, inflight_cap)
