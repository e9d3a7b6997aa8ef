"""Assertions (`success_criteria[]`): one discriminated union on `type`, per the reference [D].

The secondary source's shape is accepted on input and rewritten to [D]'s: `kind` → `type`,
`phrase` → `pattern` (escaped unless `match_type: "regex"`), `case_sensitive: true` →
the pattern wrapped in `(?-i:…)` (matching is case-insensitive otherwise). Whether a pattern
compiles is checked with the scorer's regex engine (RE2) when the case is saved.
"""

from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, StringConstraints

from schemas.agents import ModelName, ToolName
from schemas.bodies import Body
from schemas.fields import JsonObject, LongText, ShortText

Weight = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False, description="Relative weight, > 0.")]
Pattern = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1000),
    Field(
        description="RE2 regular expression, matched case-insensitively against the entire agent "
        "transcript (the agent's messages joined by newlines; `.` also matches a newline)."
    ),
]


class _Assertion(Body):
    weight: Weight = 1.0
    description: ShortText | None = None


class MustSay(_Assertion):
    """Passes when `pattern` matches the agent transcript (a match may span messages)."""

    type: Literal["must_say"]
    pattern: Pattern


class MustNotSay(_Assertion):
    """Passes when `pattern` matches nowhere in the agent transcript, across messages too."""

    type: Literal["must_not_say"]
    pattern: Pattern


class MustCallTool(_Assertion):
    """Passes when the agent called `tool_name` with arguments equal to `args_match` on its keys
    (`"$present"`: the key is present and not null)."""

    type: Literal["must_call_tool"]
    tool_name: ToolName
    args_match: JsonObject | None = None


class MustReachNode(_Assertion):
    """Passes when a flow agent entered `node_id`; fails with a reason on prompt agents."""

    type: Literal["must_reach_node"]
    node_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class CustomLlmJudge(_Assertion):
    """A judge model reads the transcript and decides whether `rubric` is met; `samples` (odd)
    votes take the majority."""

    type: Literal["custom_llm_judge"]
    rubric: Annotated[LongText, StringConstraints(min_length=1, max_length=10_000)]
    samples: Literal[1, 3, 5, 7, 9] = Field(default=1, description="Odd number of judge votes (1-9).")
    model: ModelName | None = None


def _escape(literal: str) -> str:
    """Escape for RE2: a backslash before every ASCII punctuation character."""
    return "".join(f"\\{c}" if c in string.punctuation else c for c in literal)


def accept_secondary_shape(value: object) -> object:
    """Rewrite the secondary source's assertion keys to the reference shape; leave others alone."""
    if not isinstance(value, dict) or not ({"kind", "phrase", "match_type", "case_sensitive"} & value.keys()):
        return value
    out = dict(value)
    if "kind" in out and "type" not in out:
        out["type"] = out.pop("kind")
    match_type = out.pop("match_type", "substring")
    if "phrase" in out and "pattern" not in out:
        phrase = out.pop("phrase")
        out["pattern"] = phrase if match_type == "regex" or not isinstance(phrase, str) else _escape(phrase)
    if out.pop("case_sensitive", False) is True and isinstance(out.get("pattern"), str):
        out["pattern"] = f"(?-i:{out['pattern']})"
    return out


ASSERTION_TYPES: tuple[str, ...] = (
    "must_say",
    "must_not_say",
    "must_call_tool",
    "must_reach_node",
    "custom_llm_judge",
)

Assertion = Annotated[
    MustSay | MustNotSay | MustCallTool | MustReachNode | CustomLlmJudge,
    Field(discriminator="type"),
    BeforeValidator(accept_secondary_shape),
]
