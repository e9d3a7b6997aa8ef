"""Money decisions (DESIGN.md §7): who may start runs, and how much of a bill a balance covers."""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class Debit:
    taken_cents: int  # debited now (a ledger entry when > 0)
    uncollected_cents: int  # what the balance could not cover


def debit(balance_cents: int, total_cents: int) -> Debit:
    """Take what the balance covers, never more: a balance never goes below zero."""
    if balance_cents < 0 or total_cents < 0:
        raise ValueError("amounts cannot be negative")
    taken = min(balance_cents, total_cents)
    return Debit(taken, total_cents - taken)
