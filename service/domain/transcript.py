"""A run's transcript as pure values: what scoring, judging and the turn loop reason about."""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import JsonValue


@dataclass(frozen=True)
class ToolCallRecord:
    id: str
    name: str
    arguments: dict[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True)
class TranscriptTurn:
    """One transcript row: a persona or agent message, a tool result, or a flow event."""

    turn_number: int
    role: str  # persona | agent | tool_result | flow_event
    text: str | None = None
    tool_calls: tuple[ToolCallRecord, ...] = ()
    tool_result: dict[str, JsonValue] | None = None
    flow_event: dict[str, JsonValue] | None = None


def agent_messages(transcript: Sequence[TranscriptTurn]) -> list[TranscriptTurn]:
    """The agent's rows that carry text, in turn order."""
    return [t for t in transcript if t.role == "agent" and t.text]


MESSAGE_SEPARATOR = "\n"


@dataclass(frozen=True)
class AgentTranscript:
    """The agent's messages as one text (reference §4.1: a pattern is matched against the entire
    agent transcript), remembering where each message ends so an offset maps back to its turn.

    Messages are joined by a newline, one per line as the transcript is read: the reference names
    no separator and no flag but case-insensitivity, yet `refund.*goodbye` must match across two
    messages, so the patterns are compiled dotall (`.` crosses the newline between messages and
    inside one alike) rather than messages glued with a space: a space would make a literal
    `hello world` match "…hello" + "world…" said in two messages, and `(?m)^…$` could no longer
    anchor at a message.
    """

    text: str
    turns: tuple[int, ...]  # the turn number of each message, in order
    ends: tuple[int, ...]  # the offset just past each message (where the separator after it sits)

    def turn_at(self, offset: int) -> int:
        """The turn of the message holding character `offset`; a separator counts toward the
        message after it (a match starting at a message boundary is said by the next message)."""
        index = bisect_right(self.ends, offset)
        return self.turns[min(index, len(self.turns) - 1)]


def agent_transcript(transcript: Sequence[TranscriptTurn]) -> AgentTranscript | None:
    """The agent's text turns joined in turn order, or None when the agent said nothing."""
    messages = agent_messages(transcript)
    if not messages:
        return None
    ends: list[int] = []
    offset = -len(MESSAGE_SEPARATOR)
    for message in messages:
        offset += len(MESSAGE_SEPARATOR) + len(message.text or "")
        ends.append(offset)
    text = MESSAGE_SEPARATOR.join(m.text or "" for m in messages)
    return AgentTranscript(text, tuple(m.turn_number for m in messages), tuple(ends))


def render(transcript: Sequence[TranscriptTurn]) -> str:
    """The transcript as a judge reads it: one numbered line per row."""
    lines: list[str] = []
    for turn in transcript:
        prefix = f"[turn {turn.turn_number}] {turn.role}"
        if turn.text:
            lines.append(f"{prefix}: {turn.text}")
        for call in turn.tool_calls:
            lines.append(
                f"{prefix} called tool {call.name} with {json.dumps(call.arguments, sort_keys=True)}"
            )
        if turn.tool_result is not None:
            lines.append(f"{prefix}: {json.dumps(turn.tool_result, sort_keys=True)}")
        if turn.flow_event is not None:
            lines.append(f"{prefix}: {json.dumps(turn.flow_event, sort_keys=True)}")
    return "\n".join(lines)
