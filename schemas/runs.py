"""What a run stores about how it was set up: the snapshot taken when it was triggered."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.cases import Case


class Prompts(BaseModel):
    """The exact system prompts sent (filled in when the run starts)."""

    agent: str | None = None
    persona: str | None = None


class RunConfig(BaseModel):
    """The immutable snapshot on `eval_runs.config`: the case as triggered, with the merged agent
    (agent ← case overrides ← run overrides) and the persona actually used embedded in it."""

    case: Case
    prompts: Prompts = Field(default_factory=Prompts)
