"""The run lifecycle table (DESIGN.md §3): the one place statuses, endings and events are decided."""

from __future__ import annotations

from typing import get_args

import pytest

from schemas.api import QueueStatus, RunStatus, TerminationReason
from schemas.events import EventType
from service.db import states
from service.domain import lifecycle
from service.domain.lifecycle import (
    BILLING_EVENTS,
    SCORING_EVENTS,
    TERMINAL_STATUSES,
    TRANSITIONS,
    Ending,
    Step,
    billable,
    end_event,
    is_final,
    is_terminal,
    is_unclaimed,
    needs_scoring,
    settled_events,
    settles_in_place,
)


def test_the_table_covers_every_status_queue_status_and_reason_of_the_wire_contract() -> None:
    assert set(lifecycle.STATUSES) == set(get_args(RunStatus))
    assert set(lifecycle.QUEUE_STATUSES) == set(get_args(QueueStatus))
    assert set(lifecycle.ENDING_STATUS) == set(get_args(TerminationReason))


def test_only_conversations_that_are_over_are_terminal() -> None:
    assert {"completed", "failed", "cancelled"} == TERMINAL_STATUSES
    assert not is_terminal("queued")
    assert not is_terminal("running")


def test_only_done_is_final() -> None:
    assert [q for q in get_args(QueueStatus) if is_final(q)] == ["done"]


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("persona_goodbye", "completed"),
        ("agent_ended", "completed"),
        ("max_turns", "completed"),
        ("timeout", "completed"),
        ("error", "failed"),
        ("cancelled", "cancelled"),
    ],
)
def test_an_ending_reason_decides_the_status(reason: TerminationReason, status: RunStatus) -> None:
    assert Ending(reason).status == status


def test_each_terminal_status_is_announced_by_its_own_end_event() -> None:
    assert end_event("completed") is EventType.RUN_COMPLETED
    assert end_event("failed") is EventType.RUN_FAILED
    assert end_event("cancelled") is EventType.RUN_CANCELLED
    with pytest.raises(ValueError, match="not a terminal status"):
        end_event("running")


def test_only_completed_runs_are_scored_and_only_once() -> None:
    assert needs_scoring("completed", scored=False)
    assert not needs_scoring("completed", scored=True)
    assert not needs_scoring("failed", scored=False)
    assert not needs_scoring("cancelled", scored=False)
    assert frozenset({EventType.RUN_COMPLETED}) == SCORING_EVENTS


@pytest.mark.parametrize(
    ("status", "queue_status", "scored", "expected"),
    [
        ("completed", "claimed", True, True),
        ("completed", "claimed", False, False),  # waits for the scorer
        ("failed", "claimed", False, True),
        ("cancelled", "claimed", False, True),
        ("completed", "done", True, False),  # never twice
        ("cancelled", "done", False, False),
        ("running", "claimed", False, False),
        ("queued", "pending", False, False),
    ],
)
def test_a_run_is_billable_once_its_pipeline_before_billing_is_over(
    status: RunStatus, queue_status: QueueStatus, scored: bool, expected: bool
) -> None:
    assert billable(status, queue_status, scored) is expected


def test_the_biller_listens_to_scored_runs_and_to_endings_that_are_not_scored() -> None:
    assert frozenset({EventType.RUN_SCORED, EventType.RUN_FAILED, EventType.RUN_CANCELLED}) == BILLING_EVENTS


def test_billing_and_the_cancel_before_claim_finish_with_run_done() -> None:
    assert TRANSITIONS[Step.BILLED].events == (EventType.RUN_BILLED, EventType.RUN_DONE)
    assert TRANSITIONS[Step.BILLED].queue_status == "done"
    cancelled = TRANSITIONS[Step.CANCELLED_BEFORE_CLAIM]
    assert (cancelled.status, cancelled.queue_status) == ("cancelled", "done")
    assert cancelled.events[-1] is EventType.RUN_DONE


def test_a_run_is_unclaimed_only_as_created() -> None:
    assert is_unclaimed("queued", "pending")
    assert not is_unclaimed("running", "claimed")
    assert not is_unclaimed("queued", "claimed")  # an expired lease of a run that never started


def test_the_sql_literals_name_the_same_statuses() -> None:
    assert states.TERMINAL == "('cancelled', 'completed', 'failed')"
    assert states.UNFINISHED == "('queued', 'running')"
    assert states.SCORED == "('completed')"
    assert (states.QUEUED, states.PENDING, states.RUNNING, states.CLAIMED, states.DONE) == (
        "'queued'",
        "'pending'",
        "'running'",
        "'claimed'",
        "'done'",
    )


def test_sql_literals_escape_quotes() -> None:
    assert states.literal("it's") == "'it''s'"


def test_a_run_settles_where_it_ends_unless_its_completed_verdict_needs_the_judge() -> None:
    assert settles_in_place("completed", has_verdict=True)
    assert not settles_in_place("completed", has_verdict=False)
    assert settles_in_place("failed", has_verdict=False)
    assert settles_in_place("cancelled", has_verdict=False)


def test_a_settled_run_announces_every_step_it_took_in_the_pipeline_order() -> None:
    run = "agent_eval.run."
    assert [e.value.removeprefix(run) for e in settled_events("completed")] == [
        "completed",
        "scored",
        "billed",
        "done",
    ]
    assert [e.value.removeprefix(run) for e in settled_events("failed")] == ["failed", "billed", "done"]
    assert [e.value.removeprefix(run) for e in settled_events("cancelled")] == ["cancelled", "billed", "done"]
    with pytest.raises(ValueError, match="not a terminal status"):
        settled_events("running")
