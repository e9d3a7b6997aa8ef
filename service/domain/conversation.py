"""The turn loop's decisions (DESIGN.md §3, §6): pure functions of the transcript so far.

A turn is one persona or agent message; `max_turns` counts only those. The agent speaks first
only with a literal `greeting_message` (and `agent_speaks_first`); otherwise the persona opens.
After the agent's tool calls come their results, then the agent again (which may pass, saying
nothing, and the persona speaks). The persona ends the conversation with `end_conversation`
(`persona_goodbye`, no further agent reply); the agent with `end_call` (`agent_ended`, once any
other tools called with it are answered). The wall-clock budget counts only time an executor
owned the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from schemas.api import TerminationReason
from service.domain.messages import END_CALL, END_CONVERSATION
from service.domain.transcript import ToolCallRecord, TranscriptTurn


@dataclass(frozen=True)
class Greet:
    text: str


@dataclass(frozen=True)
class Speak:
    who: Literal["agent", "persona"]
    after_tools: bool = False  # the agent answers its tool results (it may also say nothing)


@dataclass(frozen=True)
class AnswerTools:
    calls: tuple[ToolCallRecord, ...]


@dataclass(frozen=True)
class Finish:
    reason: TerminationReason
    error: str | None = None  # for reason "error": what went wrong, and its machine code
    error_code: str | None = None


Step = Greet | Speak | AnswerTools | Finish


@dataclass(frozen=True)
class Rules:
    max_turns: int
    agent_speaks_first: bool
    greeting: str | None
    budget_ms: int
    answers_tools: bool = True  # False for an agent that runs its own tools (an HTTP agent)


def time_budget_ms(agent_limit_s: float | None, operator_limit_s: float) -> int:
    """The run's wall-clock budget: the agent's own limit, never beyond the operator's ceiling
    (`RUN_TIMEOUT_S`); an agent without one (None or 0) gets the ceiling."""
    limit_s = min(agent_limit_s, operator_limit_s) if agent_limit_s else operator_limit_s
    return int(limit_s * 1000)


def spoken_turns(transcript: Sequence[TranscriptTurn]) -> int:
    return sum(t.role in ("persona", "agent") for t in transcript)


def calls(turn: TranscriptTurn, name: str) -> bool:
    return any(call.name == name for call in turn.tool_calls)


def pending_calls(transcript: Sequence[TranscriptTurn]) -> tuple[ToolCallRecord, ...]:
    """The last agent turn's tool calls (other than end_call) that have no result yet."""
    agent_turns = [i for i, t in enumerate(transcript) if t.role == "agent"]
    if not agent_turns:
        return ()
    last = agent_turns[-1]
    answered = {
        str(t.tool_result.get("tool_call_id"))
        for t in transcript[last + 1 :]
        if t.role == "tool_result" and t.tool_result is not None
    }
    wanted = transcript[last].tool_calls
    return tuple(c for c in wanted if c.name != END_CALL.name and c.id not in answered)


def hung_up(transcript: Sequence[TranscriptTurn]) -> bool:
    """The latest agent turn called end_call (only its tool results may follow it)."""
    latest = next((t for t in reversed(transcript) if t.role != "tool_result"), None)
    return latest is not None and latest.role == "agent" and calls(latest, END_CALL.name)


def next_step(
    transcript: Sequence[TranscriptTurn], rules: Rules, elapsed_ms: int, *, agent_passed: bool = False
) -> Step:
    """What happens next, given everything persisted so far. `agent_passed`: the agent answered
    its tool results with nothing to say, so the persona speaks next."""
    if not transcript:
        if elapsed_ms >= rules.budget_ms:
            return Finish("timeout")
        if rules.agent_speaks_first and rules.greeting:
            return Greet(rules.greeting)
        return Speak("persona")
    last = transcript[-1]
    if last.role == "persona" and calls(last, END_CONVERSATION.name):
        return Finish("persona_goodbye")
    pending = pending_calls(transcript) if rules.answers_tools else ()
    if pending:
        return AnswerTools(pending)  # even when hanging up: the calls it made alongside still happen
    if last.role in ("agent", "tool_result") and hung_up(transcript):
        return Finish("agent_ended")
    if spoken_turns(transcript) >= rules.max_turns:
        return Finish("max_turns")
    if elapsed_ms >= rules.budget_ms:
        return Finish("timeout")
    if last.role == "tool_result":
        return Speak("persona") if agent_passed else Speak("agent", after_tools=True)
    return Speak("agent" if last.role == "persona" else "persona")
