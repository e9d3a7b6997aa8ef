"""Money decisions (DESIGN.md §7) and the lifecycle's last stage event (DESIGN.md §2, §3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.api import RunStatus
from schemas.events import EventType
from service.domain.ledger import billing_refusal
from service.domain.lifecycle import TERMINAL_STATUSES, last_stage_event

# --- billing_refusal ---------------------------------------------------------------------------


@pytest.mark.parametrize(("balance", "min_balance", "runs"), [(10**9, 1, 1), (0, 0, 1), (100, 0, 10)])
def test_a_suspended_company_is_refused_whatever_its_balance(
    balance: int, min_balance: int, runs: int
) -> None:
    refusal = billing_refusal(True, balance, min_balance, runs)

    assert refusal is not None
    assert "suspended" in refusal


def test_a_balance_below_the_minimum_for_the_runs_is_refused_naming_both_numbers() -> None:
    refusal = billing_refusal(False, 9, 5, 2)

    assert refusal is not None
    assert "10 cents" in refusal
    assert "have 9" in refusal
    assert "suspended" not in refusal


def test_the_minimum_grows_with_the_number_of_runs() -> None:
    assert billing_refusal(False, 10, 5, 2) is None
    assert billing_refusal(False, 10, 5, 3) is not None


def test_a_balance_of_exactly_the_minimum_times_runs_is_enough() -> None:
    assert billing_refusal(False, 15, 5, 3) is None


def test_a_zero_balance_is_refused_at_the_default_minimum() -> None:
    refusal = billing_refusal(False, 0, 1, 1)

    assert refusal is not None
    assert "1 cents" in refusal
    assert "have 0" in refusal


def test_a_minimum_of_zero_allows_a_zero_balance() -> None:
    assert billing_refusal(False, 0, 0, 1) is None
    assert billing_refusal(False, 0, 0, 50) is None


@given(st.integers(0, 10**9), st.integers(0, 10**6), st.integers(1, 1000))
def test_an_active_company_is_refused_exactly_when_its_balance_is_below_min_times_runs(
    balance: int, min_balance: int, runs: int
) -> None:
    refusal = billing_refusal(False, balance, min_balance, runs)

    assert (refusal is not None) is (balance < min_balance * runs)


# --- last_stage_event --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "scored", "event"),
    [
        ("completed", True, EventType.RUN_SCORED),
        ("completed", False, EventType.RUN_COMPLETED),
        ("failed", False, EventType.RUN_FAILED),
        ("failed", True, EventType.RUN_FAILED),
        ("cancelled", False, EventType.RUN_CANCELLED),
        ("cancelled", True, EventType.RUN_CANCELLED),
    ],
)
def test_a_terminal_run_is_moved_on_by_its_last_stage_event(
    status: RunStatus, scored: bool, event: EventType
) -> None:
    assert last_stage_event(status, scored) is event


@pytest.mark.parametrize("status", ["queued", "running"])
@pytest.mark.parametrize("scored", [False, True])
def test_a_run_that_is_not_terminal_has_no_last_stage_event(status: RunStatus, scored: bool) -> None:
    assert last_stage_event(status, scored) is None


def test_every_terminal_status_has_a_last_stage_event() -> None:
    assert frozenset({"completed", "failed", "cancelled"}) == TERMINAL_STATUSES
    for status in TERMINAL_STATUSES:
        assert last_stage_event(status, False) is not None
