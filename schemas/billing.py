"""Billing reads (`/billing`, `/billing/consumption`), computed from the credit ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.bodies import Query
from schemas.fields import QueryDateTime

GroupBy = Literal["day", "month", "total", "agent"]
Product = Literal["voice_call", "eval_run", "phone_number", "topup", "refund", "adjustment"]


class Billing(BaseModel):
    """The company's billing status; `balance` is `balance_cents / 100` in `currency`."""

    has_payment_method: bool
    billing_email: str | None
    balance_cents: int
    balance: float
    currency: str
    is_suspended: bool
    auto_topup_enabled: bool
    auto_topup_amount_cents: int | None
    low_balance_threshold_cents: int | None


class ConsumptionQuery(Query):
    """Ledger movements in [`from`, `to`), grouped. Top-ups are left out unless asked for."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: QueryDateTime | None = Field(
        default=None, alias="from", description="Inclusive; default 30 days ago."
    )
    to: QueryDateTime | None = Field(default=None, description="Exclusive; default now.")
    group_by: GroupBy = "day"
    product: Product | None = None
    include_topups: bool = False


class ConsumptionRow(BaseModel):
    period: str = Field(description="`YYYY-MM-DD`, `YYYY-MM`, or `total`.")
    product: Product
    total_amount_cents: int = Field(description="Consumption is positive; refunds are negative.")
    count: int
    agent_id: UUID | None = None


class Consumption(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    group_by: GroupBy
    data: list[ConsumptionRow]
