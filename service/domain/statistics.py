"""Honest statistics for repeated runs (pure): pass rates with Wilson 95 % intervals, the unbiased
pass^k estimator, mean scores with standard errors, flakiness, and Fisher's exact test for a
baseline-vs-current regression diff.

A run's outcome is one of four classes. Runs that ended in error, and runs whose judge could not
decide (inconclusive), are their own classes: they are never counted as passes or failures, so
they are left out of every pass rate. Cancelled runs count nowhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

Z_95 = 1.959963984540054  # the two-sided 95 % normal quantile


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERRORED = "errored"
    INCONCLUSIVE = "inconclusive"
    CANCELLED = "cancelled"
    PENDING = "pending"  # not done yet: counts nowhere until it is


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Tally:
    """Outcomes of a group of runs (one case's iterations, or a whole suite run)."""

    passed: int = 0
    failed: int = 0
    errored: int = 0
    inconclusive: int = 0
    cancelled: int = 0
    pending: int = 0

    @property
    def decided(self) -> int:
        """Runs that passed or failed: the denominator of every pass rate."""
        return self.passed + self.failed


def outcome_of(status: str, queue_status: str, pass_fail: bool | None) -> Outcome:
    """The class a run falls in, from its status, queue status and verdict (final once done)."""
    if queue_status != "done":
        return Outcome.PENDING
    if status == "cancelled":
        return Outcome.CANCELLED
    if status == "failed":
        return Outcome.ERRORED
    if pass_fail is None:
        return Outcome.INCONCLUSIVE
    return Outcome.PASSED if pass_fail else Outcome.FAILED


def tally(outcomes: Iterable[Outcome]) -> Tally:
    counts = dict.fromkeys(Outcome, 0)
    for outcome in outcomes:
        counts[outcome] += 1
    return Tally(
        passed=counts[Outcome.PASSED],
        failed=counts[Outcome.FAILED],
        errored=counts[Outcome.ERRORED],
        inconclusive=counts[Outcome.INCONCLUSIVE],
        cancelled=counts[Outcome.CANCELLED],
        pending=counts[Outcome.PENDING],
    )


def pass_rate(passed: int, decided: int) -> float | None:
    """Passes over decided runs; None when nothing was decided."""
    return None if decided == 0 else passed / decided


def wilson_interval(passed: int, decided: int, z: float = Z_95) -> Interval | None:
    """The Wilson score interval for a pass rate (good at small n and near 0 or 1, unlike the
    normal approximation); None when nothing was decided."""
    if decided == 0:
        return None
    p = passed / decided
    z2 = z * z
    centre = (p + z2 / (2 * decided)) / (1 + z2 / decided)
    half = z * math.sqrt(p * (1 - p) / decided + z2 / (4 * decided * decided)) / (1 + z2 / decided)
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def pass_hat_k(passed: int, decided: int) -> list[float]:
    """pass^k for k = 1..decided: the unbiased estimate of the chance that k independent runs
    all pass, C(passed, k) / C(decided, k)."""
    return [math.comb(passed, k) / math.comb(decided, k) for k in range(1, decided + 1)]


@dataclass(frozen=True)
class Mean:
    value: float
    stderr: float | None  # None with a single value


def mean_with_stderr(values: Sequence[float]) -> Mean | None:
    """The mean and its standard error (sample standard deviation / √n); None for no values."""
    if not values:
        return None
    mean = sum(values) / len(values)
    if len(values) == 1:
        return Mean(mean, None)
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return Mean(mean, math.sqrt(variance / len(values)))


def is_flaky(counts: Tally) -> bool:
    """A case is flaky when its decided iterations disagree (some passed, some failed)."""
    return counts.passed > 0 and counts.failed > 0


def mean_pass_hat_k(cases: Sequence[Tally]) -> list[float]:
    """pass^k over a suite: the mean over cases of each case's pass^k, for every k that all
    cases with decided runs can estimate (k up to the smallest decided count)."""
    decided = [c for c in cases if c.decided]
    if not decided:
        return []
    k_max = min(c.decided for c in decided)
    per_case = [pass_hat_k(c.passed, c.decided)[:k_max] for c in decided]
    return [sum(values[k] for values in per_case) / len(per_case) for k in range(k_max)]


# --- the regression diff ------------------------------------------------------------------------


class Flip(StrEnum):
    PASS_TO_FAIL = "pass_to_fail"  # noqa: S105 — a flip, not a password
    FAIL_TO_PASS = "fail_to_pass"  # noqa: S105 — a flip, not a password
    STABLE = "stable"
    FLAKY = "flaky"  # either side disagrees with itself
    UNDECIDED = "undecided"  # a side has no decided runs


def verdict(counts: Tally) -> str | None:
    """`pass` (every decided run passed), `fail` (none did), `flaky`, or None (none decided)."""
    if counts.decided == 0:
        return None
    if counts.passed == counts.decided:
        return "pass"
    if counts.passed == 0:
        return "fail"
    return "flaky"


def flip_of(baseline: Tally, current: Tally) -> Flip:
    before, after = verdict(baseline), verdict(current)
    if before is None or after is None:
        return Flip.UNDECIDED
    if "flaky" in (before, after):
        return Flip.FLAKY
    if before == after:
        return Flip.STABLE
    return Flip.PASS_TO_FAIL if before == "pass" else Flip.FAIL_TO_PASS


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test on the table [[a, b], [c, d]]: the probability,
    with the margins fixed, of a table at most as likely as the one observed."""
    row1, col1, n = a + b, a + c, a + b + c + d
    if n == 0:
        return 1.0

    def probability(x: int) -> float:
        return math.comb(col1, x) * math.comb(n - col1, row1 - x) / math.comb(n, row1)

    observed = probability(a)
    low, high = max(0, row1 + col1 - n), min(row1, col1)
    total = sum(p for x in range(low, high + 1) if (p := probability(x)) <= observed * (1 + 1e-9))
    return min(1.0, total)


@dataclass(frozen=True)
class CaseDiff:
    flip: Flip
    p_value: float
    regressed: bool
    improved: bool


def diff(baseline: Tally, current: Tally, alpha: float) -> CaseDiff:
    """How a case moved between two suite runs; a regression (or an improvement) is a change of
    pass rate that Fisher's exact test finds significant at `alpha`, so one unlucky sample
    does not fail a build."""
    p = fisher_exact(baseline.passed, baseline.failed, current.passed, current.failed)
    before, after = pass_rate(baseline.passed, baseline.decided), pass_rate(current.passed, current.decided)
    if before is None or after is None or p >= alpha:
        return CaseDiff(flip_of(baseline, current), p, regressed=False, improved=False)
    return CaseDiff(flip_of(baseline, current), p, regressed=after < before, improved=after > before)
