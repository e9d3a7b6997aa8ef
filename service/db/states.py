"""The run lifecycle table (`service.domain.lifecycle`) as SQL literals, so statements name the
same terminal, unfinished and scored statuses as the code that reads their results."""

from __future__ import annotations

from collections.abc import Iterable

from service.domain import lifecycle
from service.domain.lifecycle import Step


def literal(value: str) -> str:
    """`value` as an SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def in_list(values: Iterable[str]) -> str:
    """`('a', 'b')` for `x IN …`, sorted so the rendered statement is stable."""
    return "(" + ", ".join(literal(v) for v in sorted(values)) + ")"


TERMINAL = in_list(lifecycle.TERMINAL_STATUSES)
UNFINISHED = in_list(lifecycle.UNFINISHED_STATUSES)
SCORED = in_list(lifecycle.SCORED_STATUSES)
DONE = literal(lifecycle.DONE_QUEUE_STATUS)


def _state(step: Step) -> tuple[str, str]:
    """The status and queue status a step leaves a run in, as SQL literals."""
    transition = lifecycle.TRANSITIONS[step]
    if transition.status is None:
        raise ValueError(f"step {step} leaves the status as it is")
    return literal(transition.status), literal(transition.queue_status)


QUEUED, PENDING = _state(Step.CREATED)
RUNNING, CLAIMED = _state(Step.CLAIMED)
CANCELLED, _ = _state(Step.CANCELLED_BEFORE_CLAIM)
