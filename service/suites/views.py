"""Suite runs as the API shows them: the reference's aggregate (plus `done`, `errored`,
`inconclusive`), the statistics of every case and of the whole run, and the flat list of runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

from schemas.agents import AgentOverrides
from schemas.suite_runs import CaseStatistics, Interval, SuiteRunEntry, SuiteRunView, SuiteStatistics
from service.db.suite_runs import MemberRun, SuiteRunRow
from service.domain import statistics
from service.domain.statistics import Tally
from service.runs.suite_completion import outcome, summary


def _interval(counts: Tally) -> Interval | None:
    found = statistics.wilson_interval(counts.passed, counts.decided)
    return None if found is None else Interval(low=found.low, high=found.high)


def _scores(members: Sequence[MemberRun]) -> statistics.Mean | None:
    return statistics.mean_with_stderr(
        [m.score for m in members if m.score is not None and outcome(m) is not statistics.Outcome.PENDING]
    )


def case_statistics(members: Sequence[MemberRun]) -> list[CaseStatistics]:
    """Each case's iterations, in the order the suite run took the cases."""
    groups: dict[UUID | None, list[MemberRun]] = defaultdict(list)
    for member in members:
        groups[member.case_id].append(member)
    found = []
    for runs in groups.values():
        counts = statistics.tally(outcome(m) for m in runs)
        mean = _scores(runs)
        found.append(
            CaseStatistics(
                case_id=runs[0].case_id,
                case_name=runs[0].case_name,
                iterations=len(runs),
                passed=counts.passed,
                failed=counts.failed,
                errored=counts.errored,
                inconclusive=counts.inconclusive,
                cancelled=counts.cancelled,
                decided=counts.decided,
                pass_rate=statistics.pass_rate(counts.passed, counts.decided),
                pass_rate_interval=_interval(counts),
                pass_hat_k=statistics.pass_hat_k(counts.passed, counts.decided),
                score_mean=None if mean is None else mean.value,
                score_stderr=None if mean is None else mean.stderr,
                flaky=statistics.is_flaky(counts),
            )
        )
    return found


def suite_statistics(members: Sequence[MemberRun]) -> SuiteStatistics:
    cases = case_statistics(members)
    counts = statistics.tally(outcome(m) for m in members)
    mean = _scores(members)
    per_case = [Tally(passed=c.passed, failed=c.failed) for c in cases]
    return SuiteStatistics(
        decided=counts.decided,
        pass_rate=statistics.pass_rate(counts.passed, counts.decided),
        pass_rate_interval=_interval(counts),
        pass_hat_k=statistics.mean_pass_hat_k(per_case),
        score_mean=None if mean is None else mean.value,
        score_stderr=None if mean is None else mean.stderr,
        flaky_cases=sum(1 for c in cases if c.flaky),
        cases=cases,
    )


def entry(member: MemberRun) -> SuiteRunEntry:
    return SuiteRunEntry(
        id=member.id,
        case_id=member.case_id,
        iteration=member.iteration,
        position=member.position,
        status=member.status,
        queue_status=member.queue_status,
        termination_reason=member.termination_reason,
        score=member.score,
        pass_fail=member.pass_fail,
        error_code=member.error_code,
        total_cost_cents=member.total_cost_cents,
        duration_ms=member.duration_ms,
        started_at=member.started_at,
        ended_at=member.ended_at,
    )


def view(row: SuiteRunRow, members: Sequence[MemberRun]) -> SuiteRunView:
    return SuiteRunView(
        **summary(row, members).model_dump(),
        iterations=row.iterations,
        parallelism=row.parallelism,
        labels=row.labels,
        agent_overrides=None
        if row.agent_overrides is None
        else AgentOverrides.model_validate(row.agent_overrides),
        rerun_of=row.rerun_of,
        created_at=row.created_at,
        cancel_requested_at=row.cancel_requested_at,
        statistics=suite_statistics(members),
        runs=[entry(m) for m in members],
    )
