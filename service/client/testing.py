"""`agent-eval test suite|case`: start a run on a server, follow it live, conclude, report.

Exit codes: 0 passed; 1 below the pass-rate threshold, regressed against the baseline, or a run
errored (unless allowed); 2 usage or server errors (the CLI maps `RemoteError` to 2). Ctrl-C
cancels the suite run this command started, then exits 130.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from pydantic import JsonValue, ValidationError
from rich.console import Console

from schemas.runs import RunTrigger
from schemas.suite_runs import Comparison, SuiteRunEntry, SuiteRunTrigger, SuiteRunView
from service.client.api import Api
from service.client.ci import ci_labels
from service.client.progress import Follower
from service.client.reports import CaseDetail, Report, json_report, junit_xml, summary_table, verdict
from service.core.errors import RemoteError, UsageError

EXCERPT_TURNS = 12


@dataclass(frozen=True)
class SuiteOptions:
    suite_id: UUID
    iterations: int = 1
    agent_overrides: Mapping[str, JsonValue] | None = None
    min_pass_rate: float = 1.0
    baseline: str | None = None
    alpha: float = 0.05
    allow_errors: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    junit: Path | None = None
    json_path: Path | None = None


async def check_suite(api: Api, options: SuiteOptions, console: Console, env: Mapping[str, str]) -> int:
    trigger = suite_trigger(options, env)
    suite = await api.suite(options.suite_id)
    started = await api.run_suite(suite.id, trigger)
    console.print(f"suite run {started.suite_run_id}: {len(started.run_ids)} runs of {suite.name!r}")
    try:
        await Follower(api, console, suite.id, started.suite_run_id, len(started.run_ids)).follow()
    except asyncio.CancelledError:
        console.print("interrupted: cancelling the suite run")
        await api.cancel_suite_run(suite.id, started.suite_run_id)
        raise
    view = await api.suite_run(suite.id, started.suite_run_id)
    report = Report(
        suite_name=suite.name,
        view=view,
        comparison=await _comparison(api, options, view, console),
        details=await failure_details(api, view),
        min_pass_rate=options.min_pass_rate,
        allow_errors=options.allow_errors,
    )
    return await _conclude(report, options, console)


def suite_trigger(options: SuiteOptions, env: Mapping[str, str]) -> SuiteRunTrigger:
    """The suite run to start (checked here, so a bad overrides file is a usage error)."""
    fields: dict[str, JsonValue] = {
        "iterations": options.iterations,
        "labels": {**ci_labels(env), **options.labels},
    }
    if options.agent_overrides is not None:
        fields["agent_overrides"] = dict(options.agent_overrides)
    try:
        return SuiteRunTrigger.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"the suite run would be refused: {problems}") from exc


async def _comparison(
    api: Api, options: SuiteOptions, view: SuiteRunView, console: Console
) -> Comparison | None:
    if options.baseline is None:
        return None
    try:
        return await api.compare(view.suite_id, view.suite_run_id, options.baseline, options.alpha)
    except RemoteError as exc:
        if exc.status == 404 and options.baseline == "latest":
            console.print("no earlier finished suite run to compare with: skipping the regression check")
            return None
        raise


async def _conclude(report: Report, options: SuiteOptions, console: Console) -> int:
    result = verdict(report)
    console.print(summary_table(report))
    for reason in result.reasons:
        console.print(f"FAILED: {reason}")
    if result.passed:
        console.print(
            f"PASSED: {report.view.passed} passed, pass rate {report.view.statistics.pass_rate:.1%}"
        )
    if options.junit is not None:
        await asyncio.to_thread(options.junit.write_text, junit_xml(report))
    if options.json_path is not None:
        await asyncio.to_thread(options.json_path.write_text, json_report(report, result))
    return 0 if result.passed else 1


async def failure_details(api: Api, view: SuiteRunView) -> dict[UUID | None, CaseDetail]:
    """For each case with a run that did not pass: the failing assertions' reasons, the errors,
    and an excerpt of the first such run's transcript."""
    details: dict[UUID | None, CaseDetail] = {}
    for run in view.runs:
        if run.pass_fail is True or run.status == "cancelled" or run.case_id in details:
            continue
        details[run.case_id] = await _detail(api, run)
    return details


async def _detail(api: Api, run: SuiteRunEntry) -> CaseDetail:
    evaluation = await api.evaluation(run.id)
    reasons = [
        f"{r.assertion.type}: {r.reason}"
        for r in evaluation.results or []
        if not r.passed and r.outcome != "inconclusive"
    ]
    errors = [f"{run.error_code or 'ERROR'}"] if run.status == "failed" else []
    turns = (await api.turns(run.id)).data
    excerpt = "\n".join(f"[{t.turn_number}] {t.role}: {t.text or ''}".rstrip() for t in turns[:EXCERPT_TURNS])
    return CaseDetail(reasons=reasons, errors=errors, transcript=f"run {run.id}\n{excerpt}")


async def check_case(
    api: Api,
    case_id: UUID,
    console: Console,
    env: Mapping[str, str],
    *,
    labels: dict[str, str],
    json_path: Path | None,
) -> int:
    run = await api.run_case(case_id, RunTrigger(labels={**ci_labels(env), **labels}))
    evaluation = await api.evaluation(run.id)
    for result in evaluation.results or []:
        mark = "ok" if result.passed else "inconclusive" if result.outcome == "inconclusive" else "FAILED"
        console.print(f"  {mark:<12} {result.assertion.type}: {result.reason}")
    verdict_text = {True: "PASSED", False: "FAILED", None: "INCONCLUSIVE"}[run.pass_fail]
    console.print(f"{verdict_text}: run {run.id} {run.status} ({run.termination_reason}), score {run.score}")
    if json_path is not None:
        document = {"run": run.model_dump(mode="json"), "evaluation": evaluation.model_dump(mode="json")}
        await asyncio.to_thread(json_path.write_text, json.dumps(document, indent=2))
    return 0 if run.pass_fail is True else 1
