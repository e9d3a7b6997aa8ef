"""What each side of a simulated conversation is told, and how it sees the transcript.

The agent gets its own system prompt, unchanged, plus its tools and the system `end_call` tool.
The persona is told who it is, the scenario, its traits and its language, and gets an
`end_conversation` tool. Each sees the other's messages as the "user"; the persona never sees
the agent's tool calls or their results. Both prompts are built when a run is triggered and
stored on it, so a run records exactly what was sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import JsonValue

from schemas.agents import Agent
from schemas.personas import Persona
from service.domain.messages import EMPTY_OBJECT, END_CALL, END_CONVERSATION, ChatMessage, ToolSpec
from service.domain.transcript import TranscriptTurn

LANGUAGES = {"en": "English", "he": "Hebrew", "es": "Spanish", "fr": "French", "de": "German", "ar": "Arabic"}
PERSONA_OPENS = "[The call has connected. You speak first.]"


def persona_prompt(persona: Persona, scenario: str) -> str:
    traits = "\n".join(f"- {key}: {_plain(value)}" for key, value in persona.behavior_traits.items())
    language = LANGUAGES.get(persona.language, persona.language)
    parts = [
        persona.identity_prompt.strip(),
        f"Scenario:\n{scenario.strip()}",
        f"How you behave:\n{traits}" if traits else "",
        f"Speak only {language}.",
        "You are the caller in a conversation with an AI agent. Stay in character and never say "
        "you are an AI. Keep each message short, as in a spoken conversation. When your goal is "
        "met, or the conversation has clearly ended, call the end_conversation tool (you may say "
        "a last message in the same reply).",
    ]
    return "\n\n".join(p for p in parts if p)


def _plain(value: JsonValue) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def agent_prompt(agent: Agent) -> str:
    """The agent under test is sent its own system prompt exactly as configured."""
    return agent.system_prompt


def agent_tools(agent: Agent) -> list[ToolSpec]:
    declared = [
        ToolSpec(tool.name, tool.description, tool.effective_parameters() or EMPTY_OBJECT)
        for tool in agent.tools
    ]
    return [*declared, END_CALL]


def persona_tools() -> list[ToolSpec]:
    return [END_CONVERSATION]


def agent_view(prompt: str, transcript: Sequence[TranscriptTurn]) -> list[ChatMessage]:
    """The conversation from the agent's side: persona = user, itself = assistant, tool results."""
    messages = [ChatMessage("system", prompt)]
    for turn in transcript:
        if turn.role == "persona" and turn.text:
            messages.append(ChatMessage("user", turn.text))
        elif turn.role == "agent":
            messages.append(ChatMessage("assistant", turn.text, turn.tool_calls))
        elif turn.role == "tool_result" and turn.tool_result is not None:
            call_id = str(turn.tool_result.get("tool_call_id", ""))
            content = json.dumps(turn.tool_result.get("result", turn.tool_result.get("error")))
            messages.append(ChatMessage("tool", content, tool_call_id=call_id))
    return messages


def persona_view(prompt: str, transcript: Sequence[TranscriptTurn]) -> list[ChatMessage]:
    """The conversation from the persona's side: the agent's words = user, itself = assistant."""
    messages = [ChatMessage("system", prompt)]
    spoken = [t for t in transcript if t.role in ("persona", "agent") and t.text]
    if not spoken:
        messages.append(ChatMessage("user", PERSONA_OPENS))
    for turn in spoken:
        messages.append(ChatMessage("assistant" if turn.role == "persona" else "user", turn.text))
    return messages
