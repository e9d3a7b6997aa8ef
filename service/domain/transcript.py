"""A run's transcript as pure values: what scoring, judging and the turn loop reason about."""

from __future__ import annotations

import json
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
