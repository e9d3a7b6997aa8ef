"""Scoring a finished conversation (DESIGN.md §7). Pure: judge verdicts come in as values.

`must_say` / `must_not_say` search the entire agent transcript (the agent's messages joined by
newlines, `.` crossing them: see `AgentTranscript`), so a match may span messages; the reason
names the turn where the match starts. Score = Σ(weight·passed)/Σ(weight)·100 over the
conclusive assertions; no assertions → 100; any inconclusive assertion → pass_fail null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from schemas.assertions import Assertion, CustomLlmJudge, MustCallTool, MustNotSay, MustReachNode, MustSay
from schemas.evaluation import AssertionResult, Evaluation
from service.domain.matching import mismatches
from service.domain.patterns import transcript_pattern
from service.domain.transcript import TranscriptTurn, agent_transcript


def passed(assertion: Assertion, reason: str | None, turn: int | None = None) -> AssertionResult:
    return AssertionResult(
        assertion=assertion, passed=True, weight=assertion.weight, reason=reason, outcome="passed", turn=turn
    )


def failed(assertion: Assertion, reason: str, turn: int | None = None) -> AssertionResult:
    return AssertionResult(
        assertion=assertion, passed=False, weight=assertion.weight, reason=reason, outcome="failed", turn=turn
    )


def inconclusive(assertion: Assertion, reason: str, agreement: str | None = None) -> AssertionResult:
    return AssertionResult(
        assertion=assertion,
        passed=None,
        weight=assertion.weight,
        reason=reason,
        outcome="inconclusive",
        agreement=agreement,
    )


def check_must_say(assertion: MustSay | MustNotSay, transcript: Sequence[TranscriptTurn]) -> AssertionResult:
    hit = first_match_turn(assertion.pattern, transcript)
    if isinstance(assertion, MustSay):
        if hit is None:
            return failed(assertion, "no agent message matches")
        return passed(assertion, f"matched at turn {hit}", hit)
    if hit is None:
        return passed(assertion, None)
    return failed(assertion, f"said at turn {hit}", hit)


def first_match_turn(pattern: str, transcript: Sequence[TranscriptTurn]) -> int | None:
    """The turn where the first match of `pattern` in the agent transcript starts, or None."""
    agent = agent_transcript(transcript)
    if agent is None:
        return None
    found = transcript_pattern(pattern).search(agent.text)
    return None if found is None else agent.turn_at(found.start)


def check_must_call_tool(assertion: MustCallTool, transcript: Sequence[TranscriptTurn]) -> AssertionResult:
    calls = [(t.turn_number, c) for t in transcript if t.role == "agent" for c in t.tool_calls]
    named = [(turn, call) for turn, call in calls if call.name == assertion.tool_name]
    if not named:
        return failed(assertion, f"{assertion.tool_name} was never called")
    if not assertion.args_match:
        return passed(assertion, f"fired at turn {named[0][0]}", named[0][0])
    for turn, call in named:
        if not mismatches(assertion.args_match, call.arguments):
            return passed(assertion, f"fired at turn {turn}", turn)
    turn, call = named[0]
    problems = "; ".join(mismatches(assertion.args_match, call.arguments))
    return failed(assertion, f"called at turn {turn} but the arguments did not match: {problems}", turn)


def check_must_reach_node(
    assertion: MustReachNode, transcript: Sequence[TranscriptTurn], *, flow_agent: bool
) -> AssertionResult:
    if not flow_agent:
        return failed(
            assertion,
            "must_reach_node needs a flow agent; this run's agent has no flow (it is not of type flow)",
        )
    for turn in transcript:
        event = turn.flow_event or {}
        if event.get("type") == "flow_node_entered" and event.get("step_id") == assertion.node_id:
            return passed(assertion, f"reached at turn {turn.turn_number}", turn.turn_number)
    return failed(assertion, f"node {assertion.node_id} was never entered")


def check(assertion: Assertion, transcript: Sequence[TranscriptTurn], *, flow_agent: bool) -> AssertionResult:
    """Every assertion but the judge's, which needs a model call (see `service.domain.judging`)."""
    if isinstance(assertion, MustSay | MustNotSay):
        return check_must_say(assertion, transcript)
    if isinstance(assertion, MustCallTool):
        return check_must_call_tool(assertion, transcript)
    if isinstance(assertion, MustReachNode):
        return check_must_reach_node(assertion, transcript, flow_agent=flow_agent)
    raise ValueError(f"{assertion.type} is decided by a judge call")


def evaluate(
    criteria: Sequence[Assertion],
    transcript: Sequence[TranscriptTurn],
    judged: Mapping[int, AssertionResult],
    *,
    pass_threshold: float,
    flow_agent: bool,
) -> Evaluation:
    """The evaluation; `judged` holds the judge results by criterion index."""
    results = [
        judged[i] if isinstance(a, CustomLlmJudge) else check(a, transcript, flow_agent=flow_agent)
        for i, a in enumerate(criteria)
    ]
    return summarise(results, pass_threshold)


def evaluate_without_judge(
    criteria: Sequence[Assertion],
    transcript: Sequence[TranscriptTurn],
    *,
    pass_threshold: float,
    flow_agent: bool,
) -> Evaluation | None:
    """The evaluation when no criterion needs the LLM judge (it is then known the moment the
    conversation ends); None when one does."""
    if any(isinstance(a, CustomLlmJudge) for a in criteria):
        return None
    return evaluate(criteria, transcript, {}, pass_threshold=pass_threshold, flow_agent=flow_agent)


def summarise(results: Sequence[AssertionResult], pass_threshold: float) -> Evaluation:
    conclusive = [r for r in results if r.outcome != "inconclusive"]
    any_inconclusive = len(conclusive) < len(results)
    total = sum(r.weight for r in conclusive)
    if not results:
        score: float | None = 100.0
    elif total == 0:
        score = None
    else:
        score = sum(r.weight for r in conclusive if r.passed) / total * 100
    pass_fail = None if any_inconclusive or score is None else score >= pass_threshold
    return Evaluation(score=score, pass_fail=pass_fail, inconclusive=any_inconclusive, results=list(results))
