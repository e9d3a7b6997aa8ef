"""The evaluation of a run: one result per assertion, the score, pass/fail (DESIGN.md §7)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from schemas.assertions import Assertion

Outcome = Literal["passed", "failed", "inconclusive"]


class AssertionResult(BaseModel):
    """`passed` is null when the assertion is inconclusive (a judge that could not answer)."""

    assertion: Assertion
    passed: bool | None
    weight: float
    reason: str | None
    outcome: Outcome
    agreement: str | None = Field(default=None, description="Judge votes for the outcome, e.g. `2/3`.")
    turn: int | None = Field(
        default=None, description="The turn the reason names (where the phrase matched, the tool fired, ...)."
    )


class Evaluation(BaseModel):
    """Score: Σ(weight·passed)/Σ(weight)·100 over conclusive assertions (no assertions: 100).
    Any inconclusive assertion makes `pass_fail` null and `inconclusive` true."""

    score: float | None
    pass_fail: bool | None
    inconclusive: bool
    results: list[AssertionResult]
