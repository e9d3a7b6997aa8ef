"""Suite runs: start (every case, `iterations` times, `parallelism` at once), list, read, cancel,
re-run, compare, and follow live."""

from __future__ import annotations

from schemas.api import SuiteRunSummary
from schemas.pages import Page
from schemas.suite_runs import (
    CompareQuery,
    Comparison,
    RerunRequest,
    SuiteRunListQuery,
    SuiteRunStarted,
    SuiteRunTrigger,
    SuiteRunView,
)
from service.gateway.endpoints import Endpoint
from service.gateway.handlers import streams, suite_runs
from service.gateway.routes.runs import IDEMPOTENCY_KEY, LAST_EVENT_ID

SUITE_RUNS = "Suite runs"
SUITE_RUN = "/agent-eval/suites/{id}/runs/{suite_run_id}"

RUN_DESCRIPTION = """\
Creates one run per case of the suite and iteration (`iterations`, 1-50) and answers at once
(202) with their ids. At most the suite's `parallelism` runs play at once (and at most
`MAX_INFLIGHT_RUNS_PER_COMPANY` of the company's): the rest wait, held, and start as others end.
Every run records the merged agent (agent ← case `agent_overrides` ← these `agent_overrides`).
When every run is done, `agent_eval.suite_run.done` is emitted (webhooks subscribe to it by
default). 400 `SUITE_EMPTY` when the suite has no cases; 402 when the balance does not cover
`MIN_RUN_BALANCE_CENTS` times the runs; 422 for a case that cannot run, `MODEL_NOT_CONFIGURED`
naming every model of the suite without a configured provider. Refusals write nothing.
Accepts `Idempotency-Key`."""

VIEW_DESCRIPTION = """\
The reference's aggregate (`pass_rate` = passed / completed) plus `done` (every run is done: the
numbers are final), `errored` and `inconclusive`; the statistics (per case and overall: pass rate
over decided runs with a Wilson 95 % interval, pass^k, mean score ± standard error, flaky cases;
errored and inconclusive runs are never counted as passes or failures); and the runs, flat."""

COMPARE_DESCRIPTION = """\
Per case: the pass counts of the baseline and of this suite run, the flip (`pass_to_fail`,
`fail_to_pass`, `stable`, `flaky`, `undecided`, `added`, `removed`) and Fisher's exact test's
p-value. A regression (or an improvement) is a change of pass rate with p < `alpha` (0.05), so
one unlucky sample does not fail a build. `baseline=latest` compares with the suite's newest
other finished run."""

SUITE_RUN_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/agent-eval/suites/{id}/run",
        suite_runs.run_suite,
        "run_suite",
        "Run every case of a suite",
        SUITE_RUNS,
        scope="agent_eval:run",
        body=SuiteRunTrigger,
        body_required=False,
        responses={202: SuiteRunStarted},
        description=RUN_DESCRIPTION,
        headers={"Idempotency-Key": IDEMPOTENCY_KEY},
        errors=(402, 409, 422),
    ),
    Endpoint(
        "GET",
        "/agent-eval/suites/{id}/runs",
        suite_runs.list_suite_runs,
        "list_suite_runs",
        "A suite's runs, newest first",
        SUITE_RUNS,
        scope="agent_eval:read",
        query=SuiteRunListQuery,
        responses={200: Page[SuiteRunSummary]},
    ),
    Endpoint(
        "GET",
        SUITE_RUN,
        suite_runs.get_suite_run,
        "get_suite_run",
        "A suite run: aggregate, statistics and runs",
        SUITE_RUNS,
        scope="agent_eval:read",
        responses={200: SuiteRunView},
        description=VIEW_DESCRIPTION,
    ),
    Endpoint(
        "POST",
        f"{SUITE_RUN}/cancel",
        suite_runs.cancel,
        "cancel_suite_run",
        "Cancel every run of a suite run that is not over",
        SUITE_RUNS,
        scope="agent_eval:run",
        body_required=False,
        responses={202: SuiteRunView},
    ),
    Endpoint(
        "POST",
        f"{SUITE_RUN}/rerun",
        suite_runs.rerun,
        "rerun_suite_run",
        "Run a suite run's cases again (only the failed ones by default)",
        SUITE_RUNS,
        scope="agent_eval:run",
        body=RerunRequest,
        body_required=False,
        responses={202: SuiteRunStarted},
        errors=(402, 422),
    ),
    Endpoint(
        "GET",
        f"{SUITE_RUN}/compare",
        suite_runs.compare_suite_runs,
        "compare_suite_runs",
        "The regression diff against a baseline suite run",
        SUITE_RUNS,
        scope="agent_eval:read",
        query=CompareQuery,
        responses={200: Comparison},
        description=COMPARE_DESCRIPTION,
    ),
    Endpoint(
        "GET",
        f"{SUITE_RUN}/events",
        streams.stream_suite_run_events,
        "stream_suite_run_events",
        "A suite run live: each run's end, then suite_run.done (Server-Sent Events)",
        SUITE_RUNS,
        scope="agent_eval:read",
        responses={200: None},
        content_type="text/event-stream",
        headers={"Last-Event-ID": LAST_EVENT_ID},
    ),
)
