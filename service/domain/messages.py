"""Chat messages and tool declarations as the model sees them: plain values, no client library."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

from service.domain.transcript import ToolCallRecord


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: tuple[ToolCallRecord, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: Mapping[str, JsonValue]


EMPTY_OBJECT: Mapping[str, JsonValue] = {"type": "object", "properties": {}}
END_CALL = ToolSpec("end_call", "End the call. Use it once the conversation is over.", EMPTY_OBJECT)
END_CONVERSATION = ToolSpec(
    "end_conversation",
    "Hang up: call this when your goal is met or the conversation has clearly ended.",
    EMPTY_OBJECT,
)
