"""Prices and bills (DESIGN.md §7). Pure, exact, integer money.

A rate card prices tokens per role (agent, persona, judge), optionally per model, in cents per
million tokens. A call costs ⌈input·p_in + output·p_out⌉ microcents (X cents per 1M tokens is X
microcents per token), fixed when the call is persisted. A run's total is ⌈Σ microcents / 10⁶⌉
cents; the role columns split that total by largest remainder, so they add up to it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from schemas.rates import RateCard, Role

MICROCENTS_PER_CENT = 1_000_000


@dataclass(frozen=True)
class PricedCall:
    cost_microcents: int
    rate_card_version: str


def price_call(
    card: RateCard, role: Role, model: str | None, input_tokens: int, output_tokens: int
) -> PricedCall:
    """The exact price of one model call, rounded up to a whole microcent (never undercharged)."""
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError("token counts cannot be negative")
    price = card.role(role).for_model(model)
    exact = input_tokens * price.input_cents_per_million + output_tokens * price.output_cents_per_million
    return PricedCall(math.ceil(exact), card.version)


@dataclass(frozen=True)
class Bill:
    agent_cost_cents: int
    persona_cost_cents: int
    judge_cost_cents: int
    total_cost_cents: int


def cents_up(microcents: int) -> int:
    """Whole cents, rounded up: what an amount in microcents costs."""
    return -(-microcents // MICROCENTS_PER_CENT)


def bill(agent_microcents: int, persona_microcents: int, judge_microcents: int) -> Bill:
    """Whole cents for a run: total rounded up, split across roles by largest remainder."""
    parts = [agent_microcents, persona_microcents, judge_microcents]
    if any(p < 0 for p in parts):
        raise ValueError("costs cannot be negative")
    total = cents_up(sum(parts))
    floors = [p // MICROCENTS_PER_CENT for p in parts]
    left = total - sum(floors)
    # Largest fractional part first; ties go to agent, then persona, then judge.
    order = sorted(range(3), key=lambda i: (-(parts[i] % MICROCENTS_PER_CENT), i))
    for i in order[:left]:
        floors[i] += 1
    return Bill(floors[0], floors[1], floors[2], total)
