"""What the dashboard's templates show, shaped from API models by pure functions (no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from schemas.api import Turn
from schemas.assertions import Assertion, MustCallTool, MustNotSay, MustReachNode, MustSay
from schemas.evaluation import AssertionResult
from schemas.runs import Run


def money(cents: int) -> str:
    """Cents as dollars: 1234 → `$12.34`."""
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def when(moment: datetime | None) -> str:
    """A UTC timestamp to the second (`2026-12-04 11:02:03Z`), or an empty string."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def pretty_json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Bubble:
    """One transcript row as the conversation shows it."""

    number: int
    kind: str  # persona | agent | tool | flow
    speaker: str
    text: str | None
    calls: list[tuple[str, str]]  # (tool name, arguments as JSON)
    detail: str | None  # a tool result as JSON, or what a flow event says
    meta: str  # model, tokens, latency


def bubble(turn: Turn) -> Bubble:
    kind = {"persona": "persona", "agent": "agent", "tool_result": "tool", "flow_event": "flow"}[turn.role]
    calls = [(call.name, pretty_json(call.arguments)) for call in turn.tool_calls or []]
    return Bubble(
        number=turn.turn_number,
        kind=kind,
        speaker={"persona": "Caller", "agent": "Agent", "tool": "Tool result", "flow": "Flow"}[kind],
        text=turn.text,
        calls=calls,
        detail=_detail(turn),
        meta=_meta(turn),
    )


def _detail(turn: Turn) -> str | None:
    if turn.tool_result is not None:
        return pretty_json(turn.tool_result)
    if turn.flow_event is not None:
        event = turn.flow_event
        name = event.get("name") or event.get("step_id") or ""
        return f"{event.get('type', 'flow event')}: {name}".strip()
    return None


def _meta(turn: Turn) -> str:
    parts = [turn.model or ""]
    if turn.input_tokens or turn.output_tokens:
        parts.append(f"{turn.input_tokens} in / {turn.output_tokens} out tokens")
    if turn.latency_ms is not None:
        parts.append(f"{turn.latency_ms} ms")
    return " · ".join(part for part in parts if part)


@dataclass(frozen=True)
class Verdict:
    """One assertion's result, pointing at the turn its reason names."""

    title: str
    outcome: str  # passed | failed | inconclusive | pending
    reason: str | None
    turn: int | None
    weight: float
    agreement: str | None


def verdicts(run: Run) -> list[Verdict]:
    """The evaluated results once the run is scored; before that, the case's assertions as pending."""
    if run.evaluation is not None:
        return [_verdict(result) for result in run.evaluation.results]
    return [Verdict(describe(a), "pending", None, None, a.weight, None) for a in run.case.success_criteria]


def _verdict(result: AssertionResult) -> Verdict:
    return Verdict(
        describe(result.assertion),
        result.outcome,
        result.reason,
        result.turn,
        result.weight,
        result.agreement,
    )


def describe(assertion: Assertion) -> str:
    """A one-line title: the description when given, else what the assertion checks."""
    if assertion.description:
        return assertion.description
    if isinstance(assertion, MustSay):
        return f"must say /{assertion.pattern}/"
    if isinstance(assertion, MustNotSay):
        return f"must not say /{assertion.pattern}/"
    if isinstance(assertion, MustCallTool):
        return f"must call {assertion.tool_name}"
    if isinstance(assertion, MustReachNode):
        return f"must reach node {assertion.node_id}"
    return f"judge: {assertion.rubric[:80]}"


@dataclass(frozen=True)
class CostRow:
    role: str
    input_tokens: int
    output_tokens: int
    cents: int


def cost_rows(run: Run) -> list[CostRow]:
    return [
        CostRow("Agent", run.agent_input_tokens, run.agent_output_tokens, run.agent_cost_cents),
        CostRow(
            "Caller (persona)", run.persona_input_tokens, run.persona_output_tokens, run.persona_cost_cents
        ),
        CostRow("Judge", run.judge_input_tokens, run.judge_output_tokens, run.judge_cost_cents),
    ]


class Outcome(Protocol):
    """What decides a run's badge (a run, or a run in a list)."""

    @property
    def status(self) -> str: ...
    @property
    def queue_status(self) -> str: ...
    @property
    def pass_fail(self) -> bool | None: ...


def outcome_of(run: Outcome) -> str:
    """One word for a run's badge: passed, failed, inconclusive, or its status until it is done."""
    if run.queue_status != "done" or run.status != "completed":
        return run.status
    if run.pass_fail is None:
        return "inconclusive"
    return "passed" if run.pass_fail else "failed"
