"""What `agent-eval test` concludes and writes: the verdict (pass rate against the threshold,
regressions against a baseline, errored runs), JUnit XML that CI systems render (one testcase
per case; iterations as properties; the failing assertions' reasons as the failure message; a
transcript excerpt in system-out), a JSON report, and the summary table."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from uuid import UUID

from rich.table import Table

from schemas.suite_runs import CaseComparison, CaseStatistics, Comparison, SuiteRunView


@dataclass(frozen=True)
class CaseDetail:
    """Why a case did not pass: its failing assertions' reasons, an error, a transcript excerpt."""

    reasons: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    transcript: str = ""


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: list[str]


@dataclass(frozen=True)
class Report:
    suite_name: str
    view: SuiteRunView
    comparison: Comparison | None
    details: dict[UUID | None, CaseDetail]
    min_pass_rate: float
    allow_errors: bool

    def case_failed(self, case: CaseStatistics) -> bool:
        return (case.pass_rate is not None and case.pass_rate < self.min_pass_rate) or self._regressed(case)

    def case_errored(self, case: CaseStatistics) -> bool:
        return case.decided == 0 or (case.errored > 0 and not self.allow_errors)

    def _regressed(self, case: CaseStatistics) -> bool:
        found = self.flip_of(case)
        return found is not None and found.regressed

    def flip_of(self, case: CaseStatistics) -> CaseComparison | None:
        if self.comparison is None:
            return None
        return next((c for c in self.comparison.cases if c.case_id == case.case_id), None)


def verdict(report: Report) -> Verdict:
    """Passed when the pass rate (over decided runs) reaches the threshold, nothing regressed,
    and no run errored (unless errors are allowed)."""
    stats, reasons = report.view.statistics, []
    if stats.pass_rate is None:
        reasons.append("no run passed or failed (all errored, inconclusive or cancelled)")
    elif stats.pass_rate < report.min_pass_rate:
        reasons.append(f"pass rate {stats.pass_rate:.1%} is below {report.min_pass_rate:.1%}")
    if report.comparison is not None and report.comparison.regressions:
        reasons.append(f"{len(report.comparison.regressions)} case(s) regressed against the baseline")
    if report.view.errored and not report.allow_errors:
        reasons.append(f"{report.view.errored} run(s) ended in error")
    return Verdict(not reasons, reasons)


def _rate(case: CaseStatistics) -> str:
    if case.pass_rate is None:
        return "-"
    interval = case.pass_rate_interval
    span = f" [{interval.low:.0%}-{interval.high:.0%}]" if interval else ""
    return f"{case.pass_rate:.0%}{span}"


def junit_xml(report: Report) -> str:
    view = report.view
    suite = ET.Element(
        "testsuite",
        name=report.suite_name,
        tests=str(len(view.statistics.cases)),
        failures=str(sum(1 for c in view.statistics.cases if report.case_failed(c))),
        errors=str(sum(1 for c in view.statistics.cases if report.case_errored(c))),
        time=_seconds(view),
        timestamp=view.created_at.isoformat(),
        id=str(view.suite_run_id),
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in _suite_properties(report):
        ET.SubElement(properties, "property", name=name, value=value)
    for case in view.statistics.cases:
        _testcase(suite, report, case)
    root = ET.Element("testsuites", name="agent-eval", tests=suite.get("tests", "0"))
    root.set("failures", suite.get("failures", "0"))
    root.set("errors", suite.get("errors", "0"))
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _suite_properties(report: Report) -> list[tuple[str, str]]:
    view = report.view
    found = [("suite_run_id", str(view.suite_run_id)), ("iterations", str(view.iterations))]
    found += [(f"label.{k}", v) for k, v in sorted(view.labels.items())]
    for run in view.runs:  # iterations as properties (JUnit has none on a testcase)
        name = next((c.case_name for c in view.statistics.cases if c.case_id == run.case_id), "?")
        result = "passed" if run.pass_fail else "failed" if run.pass_fail is False else run.status
        found.append((f"{name}.iteration.{run.iteration}", result))
    return found


def _testcase(suite: ET.Element, report: Report, case: CaseStatistics) -> None:
    spent_ms = sum(r.duration_ms or 0 for r in report.view.runs if r.case_id == case.case_id)
    element = ET.SubElement(
        suite, "testcase", name=case.case_name, classname=report.suite_name, time=f"{spent_ms / 1000:.3f}"
    )
    detail = report.details.get(case.case_id, CaseDetail())
    summary = (
        f"{case.passed}/{case.decided} passed ({_rate(case)}), "
        f"{case.errored} errored, {case.inconclusive} inconclusive"
    )
    if report.case_errored(case):
        message = "; ".join(detail.errors) or "no iteration passed or failed"
        ET.SubElement(element, "error", message=message[:500], type="RunError").text = summary
    if report.case_failed(case):
        message = "; ".join(detail.reasons) or f"pass rate {_rate(case)} below {report.min_pass_rate:.0%}"
        flip = report.flip_of(case)
        text = summary if flip is None else f"{summary}; against the baseline: {flip.flip} (p={flip.p_value})"
        ET.SubElement(element, "failure", message=message[:500], type="AssertionFailed").text = text
    if detail.transcript:
        ET.SubElement(element, "system-out").text = detail.transcript


def _seconds(view: SuiteRunView) -> str:
    if view.started_at is None or view.ended_at is None:
        return "0"
    return f"{(view.ended_at - view.started_at).total_seconds():.3f}"


def json_report(report: Report, result: Verdict) -> str:
    return json.dumps(
        {
            "passed": result.passed,
            "reasons": result.reasons,
            "suite": report.suite_name,
            "min_pass_rate": report.min_pass_rate,
            "suite_run": report.view.model_dump(mode="json"),
            "comparison": None if report.comparison is None else report.comparison.model_dump(mode="json"),
            "failures": {
                str(case_id): {"reasons": d.reasons, "errors": d.errors, "transcript": d.transcript}
                for case_id, d in report.details.items()
            },
        },
        indent=2,
    )


def summary_table(report: Report) -> Table:
    table = Table(title=f"{report.suite_name}: suite run {report.view.suite_run_id}")
    for column in ("case", "passed", "pass rate [95 %]", "errored", "vs baseline", "cost"):
        # On a narrow terminal the case name wraps; a verdict or a figure split over lines is misread.
        table.add_column(column, no_wrap=column != "case")
    costs: dict[UUID | None, int] = {}
    for run in report.view.runs:
        costs[run.case_id] = costs.get(run.case_id, 0) + run.total_cost_cents
    for case in report.view.statistics.cases:
        flip = report.flip_of(case)
        marker = "" if flip is None else flip.flip + (" (regressed)" if flip.regressed else "")
        table.add_row(
            case.case_name + (" (flaky)" if case.flaky else ""),
            f"{case.passed}/{case.decided}",
            _rate(case),
            str(case.errored),
            marker,
            f"{costs.get(case.case_id, 0)} ¢",
        )
    return table
