"""The run lifecycle (DESIGN.md §3), defined once: every other part reads this table.

`status` is what users see; `queue_status` is the pipeline's. A run is created `queued` and
`pending`, is `running` and `claimed` while an executor plays it, ends the conversation in a
terminal status (announced by that status's end event), is scored if its ending is scored, and
is final when billing sets `queue_status = 'done'`:

| step                    | status       | queue_status | events                      |
|-------------------------|--------------|--------------|-----------------------------|
| created                 | queued       | pending      | run.queued                  |
| claimed                 | running      | claimed      | run.started                 |
| turn persisted          | running      | claimed      | run.turn                    |
| cancel requested        | running      | claimed      | run.cancel_requested        |
| conversation ended      | terminal     | claimed      | the status's end event      |
| scored                  | (unchanged)  | claimed      | run.scored                  |
| billed                  | (unchanged)  | done         | run.billed, run.done        |
| cancelled before claim  | cancelled    | done         | run.cancelled, run.done     |
| settled at the end      | terminal     | done         | end event, run.scored if    |
|                         |              |              | scored, run.billed, run.done|

The last row is the executor's shortcut (`settled_events`): a conversation whose verdict needs no
judge is ended, scored and billed in one transaction, and every one of its events carries the
final summary, so the scorer and the biller see from the event alone that nothing is left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from schemas.api import QueueStatus, RunStatus, RunSummary, TerminationReason
from schemas.events import Event, EventType

FINALISE_AFTER_S = 120.0  # a terminal run not done by then gets its last stage event again


@dataclass(frozen=True)
class StatusRule:
    """What a `status` means: terminal (the conversation is over), the event announcing an
    ending in it, and whether such a run is scored before it is billed."""

    terminal: bool
    end_event: EventType | None = None
    scored: bool = False


STATUSES: Mapping[RunStatus, StatusRule] = MappingProxyType(
    {
        "queued": StatusRule(terminal=False),
        "running": StatusRule(terminal=False),
        "completed": StatusRule(terminal=True, end_event=EventType.RUN_COMPLETED, scored=True),
        "failed": StatusRule(terminal=True, end_event=EventType.RUN_FAILED),
        "cancelled": StatusRule(terminal=True, end_event=EventType.RUN_CANCELLED),
    }
)
# `done` is the only final queue status: score, evaluation and costs are final there.
QUEUE_STATUSES: Mapping[QueueStatus, bool] = MappingProxyType(
    {"pending": False, "claimed": False, "done": True}
)


class Step(StrEnum):
    CREATED = "created"
    CLAIMED = "claimed"
    TURN = "turn"
    CANCEL_REQUESTED = "cancel_requested"
    SCORED = "scored"
    BILLED = "billed"
    CANCELLED_BEFORE_CLAIM = "cancelled_before_claim"


@dataclass(frozen=True)
class Transition:
    """A step's resulting state (None: the status is left as it is) and the events it emits, in order."""

    status: RunStatus | None
    queue_status: QueueStatus
    events: tuple[EventType, ...]


TRANSITIONS: Mapping[Step, Transition] = MappingProxyType(
    {
        Step.CREATED: Transition("queued", "pending", (EventType.RUN_QUEUED,)),
        Step.CLAIMED: Transition("running", "claimed", (EventType.RUN_STARTED,)),
        Step.TURN: Transition("running", "claimed", (EventType.RUN_TURN,)),
        Step.CANCEL_REQUESTED: Transition("running", "claimed", (EventType.RUN_CANCEL_REQUESTED,)),
        Step.SCORED: Transition(None, "claimed", (EventType.RUN_SCORED,)),
        Step.BILLED: Transition(None, "done", (EventType.RUN_BILLED, EventType.RUN_DONE)),
        Step.CANCELLED_BEFORE_CLAIM: Transition(
            "cancelled", "done", (EventType.RUN_CANCELLED, EventType.RUN_DONE)
        ),
    }
)

# How a conversation ended decides its status: the natural endings are scored, an error fails.
ENDING_STATUS: Mapping[TerminationReason, RunStatus] = MappingProxyType(
    {
        "persona_goodbye": "completed",
        "agent_ended": "completed",
        "max_turns": "completed",
        "timeout": "completed",
        "error": "failed",
        "cancelled": "cancelled",
    }
)


@dataclass(frozen=True)
class Ending:
    """How a conversation ended: the reason (which decides the status) and, for failures, what
    went wrong (`error` for people, `error_code` for machines)."""

    reason: TerminationReason
    error: str | None = None
    error_code: str | None = None

    @property
    def status(self) -> RunStatus:
        return ENDING_STATUS[self.reason]


TERMINAL_STATUSES: frozenset[RunStatus] = frozenset(s for s, rule in STATUSES.items() if rule.terminal)
UNFINISHED_STATUSES: frozenset[RunStatus] = frozenset(s for s, rule in STATUSES.items() if not rule.terminal)
SCORED_STATUSES: frozenset[RunStatus] = frozenset(s for s, rule in STATUSES.items() if rule.scored)
END_EVENTS: Mapping[RunStatus, EventType] = MappingProxyType(
    {s: rule.end_event for s, rule in STATUSES.items() if rule.end_event is not None}
)
# The events after which a run is ready for the scorer, and for the biller.
SCORING_EVENTS: frozenset[EventType] = frozenset(END_EVENTS[s] for s in SCORED_STATUSES)
BILLING_EVENTS: frozenset[EventType] = frozenset(
    {*TRANSITIONS[Step.SCORED].events, *(END_EVENTS[s] for s in TERMINAL_STATUSES - SCORED_STATUSES)}
)
DONE_QUEUE_STATUS: QueueStatus = TRANSITIONS[Step.BILLED].queue_status


def is_terminal(status: RunStatus) -> bool:
    """True once the conversation is over (whatever scoring and billing still have to do)."""
    return STATUSES[status].terminal


def is_final(queue_status: QueueStatus) -> bool:
    """True when score, evaluation and costs are final (`queue_status = 'done'`)."""
    return QUEUE_STATUSES[queue_status]


def is_unclaimed(status: RunStatus, queue_status: QueueStatus) -> bool:
    """True while the run is as created: no executor has claimed it yet."""
    created = TRANSITIONS[Step.CREATED]
    return (status, queue_status) == (created.status, created.queue_status)


def end_event(status: RunStatus) -> EventType:
    """The event announcing a conversation that ended in `status` (a terminal status)."""
    event = STATUSES[status].end_event
    if event is None:
        raise ValueError(f"{status!r} is not a terminal status")
    return event


def needs_scoring(status: RunStatus, scored: bool) -> bool:
    """True when the run ended in a scored status and has not been scored yet."""
    return STATUSES[status].scored and not scored


def billable(status: RunStatus, queue_status: QueueStatus, scored: bool) -> bool:
    """Ready to bill, and not billed: terminal, not done, and scored if its ending is scored."""
    rule = STATUSES[status]
    if is_final(queue_status) or not rule.terminal:
        return False
    return scored or not rule.scored


def last_stage_event(status: RunStatus, scored: bool) -> EventType | None:
    """The event whose consumer should move a terminal, unfinished run on (None if not terminal)."""
    rule = STATUSES[status]
    if not rule.terminal:
        return None
    if rule.scored and scored:
        return EventType.RUN_SCORED
    return rule.end_event


def settles_in_place(status: RunStatus, has_verdict: bool) -> bool:
    """True when the run ending in `status` can be scored and billed in the transaction that ends
    it: its ending is not scored, or its verdict is known without a judge."""
    return has_verdict or not STATUSES[status].scored


def settled_events(status: RunStatus) -> tuple[EventType, ...]:
    """The events of a run ended, scored and billed at once, in order: the end event, `run.scored`
    if the ending is scored, then the billing step's."""
    scored = (EventType.RUN_SCORED,) if STATUSES[status].scored else ()
    return (end_event(status), *scored, *TRANSITIONS[Step.BILLED].events)


def settled_when_announced(event: Event) -> bool:
    """True when a run event's own summary says the run is done: `done` never changes back, so
    nothing is left for a stage that this event would trigger."""
    return isinstance(event.data, RunSummary) and is_final(event.data.queue_status)
