"""The rate card (DESIGN.md §7): what model tokens cost per role, optionally per model, in cents
per million tokens. Read from `AGENT_EVAL_RATE_CARD` (JSON) and versioned, so every priced call
records the card it was priced with."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["agent", "persona", "judge"]


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_cents_per_million: Decimal = Field(ge=0)
    output_cents_per_million: Decimal = Field(ge=0)


class RolePrices(Price):
    """The role's default price, and overrides for models named `<provider>:<model>`."""

    models: dict[str, Price] = Field(default_factory=dict)

    def for_model(self, model: str | None) -> Price:
        return self.models.get(model or "", self)


class RateCard(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=100)
    agent: RolePrices
    persona: RolePrices
    judge: RolePrices

    def role(self, role: Role) -> RolePrices:
        return {"agent": self.agent, "persona": self.persona, "judge": self.judge}[role]


# The reference's published eval prices ($2/$10 agent, $1/$4 persona per 1M tokens); the judge
# is priced like the agent.
DEFAULT_RATE_CARD = RateCard(
    version="2026-11-default",
    agent=RolePrices(input_cents_per_million=Decimal(200), output_cents_per_million=Decimal(1000)),
    persona=RolePrices(input_cents_per_million=Decimal(100), output_cents_per_million=Decimal(400)),
    judge=RolePrices(input_cents_per_million=Decimal(200), output_cents_per_million=Decimal(1000)),
)
