"""Run lifecycle decisions shared by the pipeline and its sweeps (DESIGN.md §2, §3)."""

from __future__ import annotations

from schemas.events import EventType

TERMINAL = frozenset({"completed", "failed", "cancelled"})
FINALISE_AFTER_S = 120.0  # a terminal run not done by then gets its last stage event again


def last_stage_event(status: str, scored: bool) -> EventType | None:
    """The event whose consumer should move a terminal, unfinished run on (None if not terminal)."""
    if status == "completed":
        return EventType.RUN_SCORED if scored else EventType.RUN_COMPLETED
    if status == "failed":
        return EventType.RUN_FAILED
    if status == "cancelled":
        return EventType.RUN_CANCELLED
    return None
