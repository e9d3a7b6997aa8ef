"""The LLM judge's pure parts: what it is asked, how its answer is read, how votes combine.

A judge answers `{"verdict": "pass" | "fail", "reason": "..."}`. With `samples: N` (odd) it is
asked N times; a strict majority of N decides. Samples that could not be read count against a
majority, so too many unreadable answers leave the assertion inconclusive — never silently failed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

from schemas.assertions import CustomLlmJudge
from schemas.evaluation import AssertionResult
from service.domain.scoring import failed, inconclusive, passed
from service.domain.transcript import TranscriptTurn, render

VERDICT_SCHEMA: dict[str, JsonValue] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "reason": {"type": "string"},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}

SYSTEM = (
    "You evaluate a conversation between a simulated caller (the persona) and an AI agent under "
    "test. Decide whether the AGENT's behaviour meets the rubric. Judge only what the transcript "
    'shows. Answer with a JSON object: {"verdict": "pass" or "fail", "reason": one or two '
    "sentences citing turn numbers}."
)


@dataclass(frozen=True)
class Vote:
    verdict: Literal["pass", "fail"]
    reason: str


def judge_messages(rubric: str, transcript: Sequence[TranscriptTurn]) -> list[dict[str, str]]:
    """The chat messages one judge call sends."""
    user = f"Rubric:\n{rubric}\n\nTranscript:\n{render(transcript) or '(empty)'}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def parse_vote(text: str | None) -> Vote | None:
    """The judge's answer, or None when it is not the JSON asked for."""
    if not text:
        return None
    try:
        data = json.loads(_strip_fence(text))
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    verdict, reason = data.get("verdict"), data.get("reason")
    if verdict not in ("pass", "fail") or not isinstance(reason, str):
        return None
    return Vote("pass" if verdict == "pass" else "fail", reason)


def _strip_fence(text: str) -> str:
    """Some models wrap JSON in a ``` fence even when asked not to."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`")
        stripped = stripped.removeprefix("json").strip()
    return stripped


def decide(assertion: CustomLlmJudge, votes: Sequence[Vote | None]) -> AssertionResult:
    """A strict majority of `samples` decides; otherwise the assertion is inconclusive."""
    samples = assertion.samples
    passes = [v for v in votes if v is not None and v.verdict == "pass"]
    fails = [v for v in votes if v is not None and v.verdict == "fail"]
    unreadable = sum(v is None for v in votes)
    if len(passes) * 2 > samples:
        return _with(passed(assertion, passes[0].reason), f"{len(passes)}/{samples}")
    if len(fails) * 2 > samples:
        return _with(failed(assertion, fails[0].reason), f"{len(fails)}/{samples}")
    detail = f"{len(passes)} pass, {len(fails)} fail, {unreadable} without a usable answer"
    return inconclusive(
        assertion, f"the judge could not decide ({detail})", f"{max(len(passes), len(fails))}/{samples}"
    )


def _with(result: AssertionResult, agreement: str) -> AssertionResult:
    return result.model_copy(update={"agreement": agreement})
