"""A transcript row as a round produces it, before it is numbered, priced and persisted."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from pydantic import JsonValue

from consumers.llm.providers import Completion
from schemas.api import TurnRole
from schemas.rates import RateCard
from service.core.ids import new_id
from service.db import turns
from service.domain import pricing
from service.domain.transcript import ToolCallRecord, TranscriptTurn


@dataclass(frozen=True)
class Draft:
    """A transcript row produced by a round, not yet numbered, priced or persisted."""

    role: TurnRole
    text: str | None = None
    tool_calls: tuple[ToolCallRecord, ...] = ()
    tool_result: dict[str, JsonValue] | None = None
    flow_event: dict[str, JsonValue] | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: int | None = None

    @classmethod
    def from_completion(cls, role: TurnRole, model: str, completion: Completion) -> Draft:
        return cls(
            role,
            text=completion.text,
            tool_calls=completion.tool_calls,
            model=model,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            latency_ms=completion.latency_ms,
        )

    def is_empty(self) -> bool:
        return not self.text and not self.tool_calls

    def has_usage(self) -> bool:
        return bool(self.input_tokens or self.output_tokens)

    def as_turn(self, number: int) -> TranscriptTurn:
        return TranscriptTurn(
            number, self.role, self.text, self.tool_calls, self.tool_result, self.flow_event
        )

    def priced(self, run_id: UUID, number: int, attempt: int, card: RateCard) -> turns.NewTurn:
        """The row to write, priced with the rate card in force (model calls only)."""
        price = pricing.price_turn(card, self.role, self.model, self.input_tokens, self.output_tokens)
        return turns.NewTurn(
            id=new_id(),
            run_id=run_id,
            turn_number=number,
            role=self.role,
            text=self.text,
            tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls]
            or None,
            tool_result=self.tool_result,
            flow_event=self.flow_event,
            model=self.model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_microcents=price.cost_microcents if price else 0,
            rate_card_version=price.rate_card_version if price else None,
            latency_ms=self.latency_ms,
            attempt=attempt,
        )
