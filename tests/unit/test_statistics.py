"""Statistics of repeated runs against hand-computed values (and the textbook ones)."""

from __future__ import annotations

import math

import pytest

from service.domain.statistics import (
    Flip,
    Outcome,
    Tally,
    diff,
    fisher_exact,
    flip_of,
    is_flaky,
    mean_pass_hat_k,
    mean_with_stderr,
    outcome_of,
    pass_hat_k,
    pass_rate,
    tally,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("status", "queue_status", "pass_fail", "outcome"),
    [
        ("completed", "done", True, Outcome.PASSED),
        ("completed", "done", False, Outcome.FAILED),
        ("completed", "done", None, Outcome.INCONCLUSIVE),
        ("failed", "done", None, Outcome.ERRORED),
        ("cancelled", "done", None, Outcome.CANCELLED),
        ("completed", "claimed", True, Outcome.PENDING),  # not final before done
        ("running", "claimed", None, Outcome.PENDING),
    ],
)
def test_every_run_falls_in_exactly_one_class(
    status: str, queue_status: str, pass_fail: bool | None, outcome: Outcome
) -> None:
    assert outcome_of(status, queue_status, pass_fail) is outcome


def test_errors_and_inconclusive_runs_are_left_out_of_pass_rates() -> None:
    counts = tally([Outcome.PASSED, Outcome.FAILED, Outcome.ERRORED, Outcome.INCONCLUSIVE, Outcome.CANCELLED])

    assert counts == Tally(passed=1, failed=1, errored=1, inconclusive=1, cancelled=1)
    assert counts.decided == 2
    assert pass_rate(counts.passed, counts.decided) == 0.5
    assert pass_rate(0, 0) is None


def test_the_wilson_interval_of_8_out_of_10() -> None:
    interval = wilson_interval(8, 10)

    assert interval is not None
    assert interval.low == pytest.approx(0.4902, abs=1e-4)
    assert interval.high == pytest.approx(0.9433, abs=1e-4)


def test_the_wilson_interval_of_no_passes_starts_at_zero_and_is_not_empty() -> None:
    interval = wilson_interval(0, 5)

    assert interval is not None
    assert interval.low == 0.0
    assert interval.high == pytest.approx(0.4345, abs=1e-4)


def test_the_wilson_interval_of_all_passes_ends_at_one() -> None:
    interval = wilson_interval(5, 5)

    assert interval is not None
    assert interval.high == 1.0
    assert interval.low == pytest.approx(1 - 0.4345, abs=1e-4)


def test_there_is_no_interval_without_decided_runs() -> None:
    assert wilson_interval(0, 0) is None


def test_pass_hat_k_is_the_unbiased_estimator() -> None:
    assert pass_hat_k(3, 5) == pytest.approx([0.6, 0.3, 0.1, 0.0, 0.0])
    assert pass_hat_k(5, 5) == [1.0] * 5
    assert pass_hat_k(0, 3) == [0.0, 0.0, 0.0]


def test_pass_hat_k_of_a_suite_averages_its_cases_up_to_the_smallest_sample() -> None:
    cases = [Tally(passed=3, failed=2), Tally(passed=2, failed=0), Tally(errored=4)]

    assert mean_pass_hat_k(cases) == pytest.approx([(0.6 + 1.0) / 2, (0.3 + 1.0) / 2])
    assert mean_pass_hat_k([Tally(errored=1)]) == []


def test_the_mean_score_carries_its_standard_error() -> None:
    mean = mean_with_stderr([80.0, 100.0, 90.0])

    assert mean is not None
    assert mean.value == 90.0
    assert mean.stderr == pytest.approx(10 / math.sqrt(3))
    single = mean_with_stderr([70.0])
    assert single is not None
    assert (single.value, single.stderr) == (70.0, None)
    assert mean_with_stderr([]) is None


def test_a_case_whose_iterations_disagree_is_flaky() -> None:
    assert is_flaky(Tally(passed=2, failed=1))
    assert not is_flaky(Tally(passed=3, errored=1))
    assert not is_flaky(Tally(failed=3, inconclusive=2))


@pytest.mark.parametrize(
    ("table", "p"),
    [
        ((3, 1, 1, 3), 0.4857),  # the lady tasting tea
        ((8, 2, 1, 5), 0.03497),  # 280 / 8008, summed by hand
        ((1, 0, 0, 1), 1.0),  # one flip of one sample proves nothing
        ((10, 0, 0, 10), 2 / 184_756),
        ((0, 0, 0, 0), 1.0),
    ],
)
def test_fishers_exact_test(table: tuple[int, int, int, int], p: float) -> None:
    assert fisher_exact(*table) == pytest.approx(p, rel=1e-3)


@pytest.mark.parametrize(
    ("baseline", "current", "flip"),
    [
        (Tally(passed=3), Tally(failed=3), Flip.PASS_TO_FAIL),
        (Tally(failed=2), Tally(passed=2), Flip.FAIL_TO_PASS),
        (Tally(passed=2), Tally(passed=5), Flip.STABLE),
        (Tally(passed=2, failed=1), Tally(passed=3), Flip.FLAKY),
        (Tally(errored=3), Tally(passed=3), Flip.UNDECIDED),
    ],
)
def test_flips_between_suite_runs(baseline: Tally, current: Tally, flip: Flip) -> None:
    assert flip_of(baseline, current) is flip


def test_one_unlucky_sample_is_a_flip_but_not_a_regression() -> None:
    moved = diff(Tally(passed=1), Tally(failed=1), alpha=0.05)

    assert moved.flip is Flip.PASS_TO_FAIL
    assert moved.p_value == 1.0
    assert not moved.regressed


def test_a_consistent_flip_over_enough_iterations_is_a_regression() -> None:
    moved = diff(Tally(passed=5), Tally(failed=5), alpha=0.05)

    assert moved.regressed
    assert not moved.improved
    assert moved.p_value == pytest.approx(2 / 252)


def test_a_significant_rise_is_an_improvement() -> None:
    moved = diff(Tally(failed=6), Tally(passed=6), alpha=0.05)

    assert moved.improved
    assert not moved.regressed


def test_the_threshold_is_configurable() -> None:
    assert diff(Tally(passed=8, failed=2), Tally(passed=1, failed=5), alpha=0.01).regressed is False
    assert diff(Tally(passed=8, failed=2), Tally(passed=1, failed=5), alpha=0.05).regressed is True
