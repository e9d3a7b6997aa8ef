"""Suite runs (`/agent-eval/suites/{id}/run`, `/agent-eval/suites/{id}/runs/...`): every case of a
suite, `iterations` times, at most `parallelism` at once; their aggregate, their statistics,
and the regression diff against a baseline."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from schemas.agents import AgentOverrides
from schemas.api import QueueStatus, RunStatus, SuiteRunSummary, TerminationReason
from schemas.bodies import Body, Query
from schemas.pages import ListQuery
from schemas.runs import Labels


class SuiteRunTrigger(Body):
    """POST /agent-eval/suites/{id}/run (every field optional)."""

    agent_overrides: AgentOverrides | None = Field(
        default=None, description="Layered over each case's own overrides, for every run."
    )
    iterations: int = Field(default=1, ge=1, le=50, description="How many times each case runs (1-50).")
    labels: Labels = Field(default_factory=dict, description="Put on the suite run and every run.")


class SuiteRunStarted(BaseModel):
    suite_run_id: UUID
    run_ids: list[UUID]


class RerunRequest(Body):
    only: Literal["failed", "all"] = Field(
        default="failed",
        description="`failed`: the cases with any run that did not pass (failed, errored, inconclusive, "
        "cancelled); `all`: every case of the suite run.",
    )


class SuiteRunListQuery(ListQuery):
    pass


class Interval(BaseModel):
    low: float
    high: float


class Statistics(BaseModel):
    """Pass rate over decided runs (passed or failed; errored and inconclusive runs are their own
    classes) with a Wilson 95 % interval, pass^k (the unbiased C(c,k)/C(n,k)), and the mean score
    with its standard error."""

    decided: int
    pass_rate: float | None
    pass_rate_interval: Interval | None
    pass_hat_k: list[float] = Field(description="pass^1 … pass^n: the chance that k runs in a row all pass.")
    score_mean: float | None
    score_stderr: float | None


class CaseStatistics(Statistics):
    case_id: UUID | None
    case_name: str
    iterations: int
    passed: int
    failed: int
    errored: int
    inconclusive: int
    cancelled: int
    flaky: bool = Field(description="Its decided iterations disagree (some passed, some failed).")


class SuiteStatistics(Statistics):
    flaky_cases: int
    cases: list[CaseStatistics]


class SuiteRunEntry(BaseModel):
    """One run of a suite run, flat (the full run is at GET /agent-eval/runs/{id})."""

    id: UUID
    case_id: UUID | None
    iteration: int | None
    position: int | None
    status: RunStatus
    queue_status: QueueStatus
    termination_reason: TerminationReason | None
    score: float | None
    pass_fail: bool | None
    error_code: str | None
    total_cost_cents: int
    duration_ms: int | None
    started_at: datetime | None
    ended_at: datetime | None


class SuiteRunView(SuiteRunSummary):
    """GET /agent-eval/suites/{id}/runs/{suite_run_id}: the aggregate, statistics and runs."""

    iterations: int
    parallelism: int
    labels: dict[str, str]
    agent_overrides: AgentOverrides | None
    rerun_of: UUID | None
    created_at: datetime
    cancel_requested_at: datetime | None
    statistics: SuiteStatistics
    runs: list[SuiteRunEntry]


class CompareQuery(Query):
    baseline: UUID | Literal["latest"] = Field(
        description="The suite run to compare against, or `latest`: "
        "the suite's newest finished run before this one."
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Significance of a regression.")


class Side(BaseModel):
    passed: int
    failed: int
    errored: int
    inconclusive: int
    pass_rate: float | None


class CaseComparison(BaseModel):
    case_id: UUID | None
    case_name: str
    baseline: Side | None
    current: Side | None
    flip: Literal["pass_to_fail", "fail_to_pass", "stable", "flaky", "undecided", "added", "removed"]
    p_value: float | None = Field(description="Fisher's exact test on the two pass/fail counts.")
    regressed: bool
    improved: bool


class Comparison(BaseModel):
    suite_run_id: UUID
    baseline_suite_run_id: UUID
    alpha: float
    regressions: list[UUID | None] = Field(description="Cases whose pass rate fell significantly.")
    improvements: list[UUID | None]
    cases: list[CaseComparison]
    pass_rate_delta: float | None
    cost_delta_cents: int
    duration_delta_ms: int | None = Field(description="Wall time (first start to last end) of the runs.")
