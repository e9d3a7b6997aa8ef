"""Money decisions (DESIGN.md §7): who may start runs, and what a run's charge took."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AdjustmentKind = Literal["grant", "deduction"]


def billing_refusal(
    is_suspended: bool, balance_cents: int, min_run_balance_cents: int, runs: int
) -> str | None:
    """Why the company may not start `runs` runs now (402), or None when it may."""
    if is_suspended:
        return "The company's account is suspended"
    needed = min_run_balance_cents * runs
    if balance_cents < needed:
        return (
            f"Insufficient credits: {runs} run(s) need a balance of at least {needed} cents, "
            f"have {balance_cents}"
        )
    return None


def adjustment_kind(amount_cents: int) -> AdjustmentKind:
    """An admin adjustment of `amount_cents` (never zero): positive is a grant, negative a deduction."""
    if amount_cents == 0:
        raise ValueError("a ledger entry cannot be zero")
    return "grant" if amount_cents > 0 else "deduction"


@dataclass(frozen=True)
class Debit:
    """What a run's charge took from the balance (DESIGN.md §7: `LEAST(balance, total)`, computed
    under the balance's lock by `service.db.ledger.charge_run`) and what it could not cover."""

    taken_cents: int  # debited now (a ledger entry when > 0)
    uncollected_cents: int
