"""The evaluation step of a flow's conversation node: after a caller message, move along one of
the node's transitions, jump to a global node, or stay.

With a real model the agent's model answers a structured question (`choice_schema`); with the
`scripted` model the choice is deterministic (`scripted_choice`), so flows are testable without
an LLM: a transition is taken when its `label` appears in the caller's message as whole words;
failing that, the option sharing the most significant words (four letters or more, not
everyday words) of its description with the message; ties go to the option listed first, and a
message that shares nothing stays.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

from schemas.flows import ConversationNode
from service.domain.flows import FlowGraph
from service.domain.messages import ChatMessage
from service.domain.transcript import TranscriptTurn

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
MIN_WORD = 4
EVERYDAY_WORDS = """
about after again also any because been before being both call caller calls could does doing done
each from have having here into just like maybe more most much need needs only other over said same
should some still such than that their them then there these they this those through user very want
wants what when where which while will with would your yours customer asks says
"""
EVERYDAY = frozenset(EVERYDAY_WORDS.split())
# Said in the prompt too: a model configured without a JSON-schema response format (or with
# `json_object`, which needs the word JSON in the messages) learns the answer's shape from it.
ANSWER_FORMAT = (
    'Answer with a JSON object only: {"decision": "stay" or "transition", "option_id": one of the '
    'ids above or null, "reasoning": one sentence}.'
)


@dataclass(frozen=True)
class Option:
    """A way out of the current node: one of its transitions, or a global node."""

    target: str
    label: str
    description: str
    transition_id: str | None  # None for a jump to a global node
    kind: Literal["transition", "global_jump"]


@dataclass(frozen=True)
class Choice:
    """The evaluation's answer: an option, or None to stay; `valid` is False when a model named
    an option that does not exist (the flow then stays)."""

    option: Option | None
    reasoning: str
    valid: bool = True


def candidates(node: ConversationNode, graph: FlowGraph) -> list[Option]:
    """The node's transitions, then every global node but itself."""
    options = [Option(t.next_step_id, t.label, t.description, t.id, "transition") for t in node.transitions]
    options += [
        Option(g.id, g.label(), g.global_jump_description or g.label(), None, "global_jump")
        for g in graph.global_nodes()
        if g.id != node.id
    ]
    return options


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def _significant(text: str) -> set[str]:
    return {w for w in words(text) if len(w) >= MIN_WORD and w not in EVERYDAY}


def _says_label(message: list[str], label: str) -> bool:
    wanted = words(label)
    size = len(wanted)
    return bool(wanted) and any(message[i : i + size] == wanted for i in range(len(message) - size + 1))


def scripted_choice(message: str, options: Sequence[Option]) -> Choice:
    """The deterministic choice of the `scripted` model (see the module docstring)."""
    said = words(message)
    for option in options:
        if _says_label(said, option.label):
            return Choice(option, f"the caller said {option.label!r}")
    heard = set(said)
    best, best_shared = None, 0
    for option in options:
        shared = len(_significant(option.description) & heard)
        if shared > best_shared:
            best, best_shared = option, shared
    if best is None:
        return Choice(None, "no option matches the caller's words")
    return Choice(best, f"the caller's words match {best.label or best.target!r}")


def choice_schema(options: Sequence[Option]) -> dict[str, JsonValue]:
    """The structured answer asked of a real model."""
    ids: list[JsonValue] = [_option_id(o) for o in options]
    return {
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["stay", "transition"]},
            "option_id": {"type": ["string", "null"], "enum": [*ids, None]},
            "reasoning": {"type": "string"},
        },
        "required": ["decision", "option_id", "reasoning"],
        "additionalProperties": False,
    }


def _option_id(option: Option) -> str:
    return option.transition_id if option.transition_id is not None else f"global:{option.target}"


def choice_messages(
    node: ConversationNode,
    options: Sequence[Option],
    transcript: Sequence[TranscriptTurn],
    metadata: Mapping[str, JsonValue],
) -> list[ChatMessage]:
    """What the evaluator is asked: the node, the options, the conversation so far."""
    listed = "\n".join(f"- {_option_id(o)}: {o.description}" for o in options)
    said = "\n".join(
        f"{'Caller' if t.role == 'persona' else 'Agent'}: {t.text}"
        for t in transcript
        if t.role in ("persona", "agent") and t.text
    )
    system = (
        "You route a conversation through a flow. The agent is in the step "
        f"{node.label()!r} with these instructions:\n{node.instructions}\n\n"
        f"Ways out of this step:\n{listed}\n\n"
        + (f"Flow metadata: {json.dumps(dict(metadata), sort_keys=True)}\n\n" if metadata else "")
        + "Decide from the caller's last message whether the conversation should move along one "
        'of them ("transition" with its option_id) or stay in this step ("stay", option_id null).\n'
        + ANSWER_FORMAT
    )
    return [ChatMessage("system", system), ChatMessage("user", said or "(nothing said yet)")]


def json_answer(text: str | None) -> JsonValue | None:
    """A model's JSON answer, also when wrapped in a ``` fence (as models asked for JSON without
    a response format often do); None when it is not JSON."""
    stripped = (text or "").strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`").removeprefix("json").strip()
    try:
        answer: JsonValue = json.loads(stripped)
    except ValueError:
        return None
    return answer


def read_choice(text: str | None, options: Sequence[Option]) -> Choice:
    """The model's structured answer; anything unusable stays, marked invalid."""
    answer = json_answer(text)
    if answer is None:
        return Choice(None, f"unreadable answer: {(text or '')[:200]!r}", valid=False)
    if not isinstance(answer, dict):
        return Choice(None, "the answer is not an object", valid=False)
    reasoning = str(answer.get("reasoning") or "")
    if answer.get("decision") != "transition":
        return Choice(None, reasoning, valid=answer.get("decision") == "stay")
    wanted = answer.get("option_id")
    option = next((o for o in options if _option_id(o) == wanted), None)
    return Choice(option, reasoning, valid=option is not None)


def decision_event(node_id: str, choice: Choice, turn_number: int) -> dict[str, JsonValue]:
    """The `flow_eval_decision` payload (reference §3.2), naming the transition taken if any."""
    option = choice.option
    return {
        "type": "flow_eval_decision",
        "step_id": node_id,
        "decision": "transition" if option is not None else "stay",
        "reasoning": choice.reasoning,
        "turn_id": turn_number,
        "target_step_id": option.target if option is not None else None,
        "transition_id": option.transition_id if option is not None else None,
        "kind": option.kind if option is not None else None,
        "valid": choice.valid,
    }
