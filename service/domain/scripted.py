"""The deterministic `scripted` model (DESIGN.md §11), for regression suites, demos and tests.

Persona: says its `script` lines in order, then hangs up (`end_conversation`). Agent: on a new
persona message the first rule whose `when` matches answers (`say` and/or `call_tool`;
`end: true` also calls `end_call`); after tool results it ends its turn without a further
message; no match → "I'm sorry, I can't help with that." Token usage: input = the whitespace
tokens of every message in the request, output = those of the reply, so pricing works too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from schemas.agents import ScriptedRule
from service.domain.messages import END_CALL, END_CONVERSATION, ChatMessage
from service.domain.patterns import compile_pattern
from service.domain.transcript import ToolCallRecord

FALLBACK = "I'm sorry, I can't help with that."


@dataclass(frozen=True)
class ScriptedReply:
    text: str | None
    tool_calls: tuple[ToolCallRecord, ...]
    input_tokens: int
    output_tokens: int


def tokens(text: str | None) -> int:
    return len(text.split()) if text else 0


def _reply(
    messages: Sequence[ChatMessage], text: str | None, calls: tuple[ToolCallRecord, ...]
) -> ScriptedReply:
    sent = sum(tokens(m.content) for m in messages)
    produced = tokens(text) + sum(tokens(c.name) + tokens(json.dumps(c.arguments)) for c in calls)
    return ScriptedReply(text, calls, sent, produced)


def persona_reply(script: Sequence[str], messages: Sequence[ChatMessage]) -> ScriptedReply:
    """The next script line, or hanging up once every line was said."""
    said = sum(m.role == "assistant" for m in messages)
    if said < len(script):
        return _reply(messages, script[said], ())
    return _reply(messages, None, (ToolCallRecord(f"end-{len(messages)}", END_CONVERSATION.name),))


def agent_reply(rules: Sequence[ScriptedRule], messages: Sequence[ChatMessage]) -> ScriptedReply:
    """The first matching rule's answer to the persona's last message."""
    last = messages[-1] if messages else None
    if last is None or last.role != "user":
        return ScriptedReply(None, (), 0, 0)  # no new persona message: nothing said, nothing billed
    text = last.content or ""
    for rule in rules:
        if compile_pattern(rule.when).search(text):
            return _reply(messages, rule.say, _calls(rule, len(messages)))
    return _reply(messages, FALLBACK, ())


def _calls(rule: ScriptedRule, position: int) -> tuple[ToolCallRecord, ...]:
    calls: list[ToolCallRecord] = []
    if rule.call_tool is not None:
        calls.append(
            ToolCallRecord(f"call-{position}-0", rule.call_tool.name, dict(rule.call_tool.arguments))
        )
    if rule.end:
        calls.append(ToolCallRecord(f"call-{position}-{len(calls)}", END_CALL.name))
    return tuple(calls)
