"""Prices and bills (DESIGN.md §7). Pure, exact, integer money.

A rate card prices tokens per role (agent, persona, judge), optionally per model, in cents per
million tokens. A call costs ⌈input·p_in + output·p_out⌉ microcents (X cents per 1M tokens is X
microcents per token), fixed when the call is persisted. A run's total is ⌈Σ microcents / 10⁶⌉
cents; the role columns split that total by largest remainder, so they add up to it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


# Model calls; tool results are free. A flow event made by a model call (a flow's evaluation step,
# an argument extraction) is the agent's call, priced and billed as the agent's.
PRICED_TURN_ROLES: dict[str, Role] = {"agent": "agent", "persona": "persona", "flow_event": "agent"}


def price_turn(
    card: RateCard, role: str, model: str | None, input_tokens: int, output_tokens: int
) -> PricedCall | None:
    """A transcript row's price: a persona or agent model call (a flow's evaluation step is the
    agent's) costs its tokens; a tool result, or a flow event no model made, costs nothing (None)."""
    priced_as = PRICED_TURN_ROLES.get(role)
    if priced_as is None or model is None:
        return None
    return price_call(card, priced_as, model, input_tokens, output_tokens)


@dataclass(frozen=True)
class Call:
    """One model call's token counts, as the provider reported them."""

    model: str | None
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Usage:
    """Tokens and their exact cost; `rate_card_version` is None when nothing was priced."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_microcents: int = 0
    rate_card_version: str | None = None


def price_calls(card: RateCard, role: Role, calls: Sequence[Call]) -> Usage:
    """Tokens and exact cost of every call a role made (the judge's, for one run), each priced
    with the rate card in force."""
    priced = [price_call(card, role, c.model, c.input_tokens, c.output_tokens) for c in calls]
    return Usage(
        input_tokens=sum(c.input_tokens for c in calls),
        output_tokens=sum(c.output_tokens for c in calls),
        cost_microcents=sum(p.cost_microcents for p in priced),
        rate_card_version=card.version if priced else None,
    )


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
