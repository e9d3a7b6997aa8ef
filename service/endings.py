"""What every transaction that ends a conversation does, whoever ends it (the executor, a cancel
before the claim, the lost-executor sweep): announce the end, and hand the slot the run held to
the next held run of its company (DESIGN.md §3 Dispatch)."""

from __future__ import annotations

from schemas.events import EventType
from service.db import dispatch, outbox, runs
from service.db.core import Connection

END_EVENTS: dict[str, EventType] = {
    "completed": EventType.RUN_COMPLETED,
    "failed": EventType.RUN_FAILED,
    "cancelled": EventType.RUN_CANCELLED,
}


async def announce_end(conn: Connection, run: runs.Run, inflight_cap: int) -> None:
    """Emit the run's terminal event and release the next held run(s) its slot allows."""
    await outbox.append_event(conn, run.id, END_EVENTS[run.status], run.summary())
    if run.released_at is not None:
        await dispatch.release_held(conn, run.company_id, inflight_cap)


async def announce_cancel_before_claim(conn: Connection, run: runs.Run, inflight_cap: int) -> None:
    """A run cancelled before any executor claimed it is final at once: cancelled, then done."""
    summary = run.summary()
    events = [(EventType.RUN_CANCELLED, summary), (EventType.RUN_DONE, summary)]
    await outbox.append_events(conn, run.id, events)
    await runs.notify_done(conn, run.id)
    if run.released_at is not None:
        await dispatch.release_held(conn, run.company_id, inflight_cap)
