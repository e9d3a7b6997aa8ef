"""The regression diff between two suite runs, case by case: pass counts, the flip, Fisher's
exact test, and whether the change is a significant regression or improvement; with the
differences in pass rate, cost and wall time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar
from uuid import UUID

from schemas.suite_runs import CaseComparison, Comparison, Side
from service.core.errors import NotFound
from service.db import suite_runs
from service.db.postgres import Connection
from service.db.suite_runs import MemberRun, SuiteRunRow
from service.domain import statistics
from service.domain.statistics import Tally
from service.runs.suite_completion import outcome


def _by_case(members: Sequence[MemberRun]) -> dict[UUID | None, tuple[str, Tally]]:
    groups: dict[UUID | None, list[MemberRun]] = defaultdict(list)
    for member in members:
        groups[member.case_id].append(member)
    return {
        case: (runs[0].case_name, statistics.tally(outcome(m) for m in runs)) for case, runs in groups.items()
    }


def _side(counts: Tally) -> Side:
    return Side(
        passed=counts.passed,
        failed=counts.failed,
        errored=counts.errored,
        inconclusive=counts.inconclusive,
        pass_rate=statistics.pass_rate(counts.passed, counts.decided),
    )


def _case(
    case_id: UUID | None, name: str, before: Tally | None, after: Tally | None, alpha: float
) -> CaseComparison:
    if before is None or after is None:
        return CaseComparison(
            case_id=case_id,
            case_name=name,
            baseline=None if before is None else _side(before),
            current=None if after is None else _side(after),
            flip="added" if before is None else "removed",
            p_value=None,
            regressed=False,
            improved=False,
        )
    moved = statistics.diff(before, after, alpha)
    return CaseComparison(
        case_id=case_id,
        case_name=name,
        baseline=_side(before),
        current=_side(after),
        flip=moved.flip.value,
        p_value=moved.p_value,
        regressed=moved.regressed,
        improved=moved.improved,
    )


def _wall_ms(members: Sequence[MemberRun]) -> int | None:
    starts = [m.started_at for m in members if m.started_at is not None]
    ends = [m.ended_at for m in members if m.ended_at is not None]
    if not starts or not ends:
        return None
    return int((max(ends) - min(starts)).total_seconds() * 1000)


def _pass_rate(members: Sequence[MemberRun]) -> float | None:
    counts = statistics.tally(outcome(m) for m in members)
    return statistics.pass_rate(counts.passed, counts.decided)


def compare(
    current: SuiteRunRow,
    current_members: Sequence[MemberRun],
    baseline: SuiteRunRow,
    baseline_members: Sequence[MemberRun],
    alpha: float,
) -> Comparison:
    before, after = _by_case(baseline_members), _by_case(current_members)
    cases = [
        _case(
            case_id,
            (after.get(case_id) or before[case_id])[0],
            _tally(before, case_id),
            _tally(after, case_id),
            alpha,
        )
        for case_id in dict.fromkeys([*after, *before])
    ]
    return Comparison(
        suite_run_id=current.id,
        baseline_suite_run_id=baseline.id,
        alpha=alpha,
        regressions=[c.case_id for c in cases if c.regressed],
        improvements=[c.case_id for c in cases if c.improved],
        cases=cases,
        pass_rate_delta=_delta(_pass_rate(current_members), _pass_rate(baseline_members)),
        cost_delta_cents=sum(m.total_cost_cents for m in current_members)
        - sum(m.total_cost_cents for m in baseline_members),
        duration_delta_ms=_delta(_wall_ms(current_members), _wall_ms(baseline_members)),
    )


def _tally(groups: dict[UUID | None, tuple[str, Tally]], case_id: UUID | None) -> Tally | None:
    found = groups.get(case_id)
    return None if found is None else found[1]


N = TypeVar("N", int, float)


def _delta(now: N | None, then: N | None) -> N | None:
    return None if now is None or then is None else now - then


async def compare_with_baseline(
    conn: Connection,
    company_id: UUID,
    current: tuple[SuiteRunRow, Sequence[MemberRun]],
    baseline: UUID | str,
    alpha: float,
) -> Comparison:
    """`current` (a suite run and its runs) against `baseline`: a suite run of the same suite, or
    `"latest"` (the suite's newest other finished run; NotFound when there is none)."""
    row, members = current
    if baseline == "latest":
        found = await suite_runs.latest_done(conn, company_id, row.suite_id, other_than=row.id)
        if found is None:
            raise NotFound(f"Suite {row.suite_id} has no other finished run to compare with")
    else:
        found = await suite_runs.get_suite_run(conn, company_id, row.suite_id, UUID(str(baseline)))
    return compare(row, members, found, await suite_runs.list_members(conn, found.id), alpha)
