"""The admin API (bearer AGENT_EVAL_ADMIN_TOKEN): companies, credits, API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

from schemas.bodies import Body, Patch
from schemas.fields import Name, reject_null

Scope = Literal[
    "agent_eval:read",
    "agent_eval:create",
    "agent_eval:update",
    "agent_eval:delete",
    "agent_eval:run",
    "agents:read",
    "agents:create",
    "agents:update",
    "agents:delete",
    "flows:test",
    "billing:read",
    "webhooks:read",
    "webhooks:manage",
]
Email = Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
MAX_CREDIT_CENTS = 10**12


class CompanyCreate(Body):
    name: Name
    credits_cents: int = Field(default=0, ge=0, le=MAX_CREDIT_CENTS, description="Opening balance (a grant).")
    billing_email: Email | None = None


class CompanyPatch(Patch):
    name: Name | SkipJsonSchema[None] = None
    is_suspended: bool | SkipJsonSchema[None] = None
    billing_email: Email | None = None

    _not_null = field_validator("name", "is_suspended")(reject_null)


class Company(BaseModel):
    id: UUID
    name: str
    balance_cents: int
    currency: str
    is_suspended: bool
    billing_email: str | None
    created_at: datetime


class CreditAdjustment(Body):
    amount_cents: int = Field(
        ge=-MAX_CREDIT_CENTS, le=MAX_CREDIT_CENTS, description="Positive grants, negative deducts; not zero."
    )
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]

    @field_validator("amount_cents")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must not be zero")
        return value


class CreditAdjusted(BaseModel):
    company_id: UUID
    entry_id: UUID
    kind: Literal["grant", "deduction"]
    amount_cents: int
    balance_cents: int


class ApiKeyCreate(Body):
    name: Name
    scopes: list[Scope] = Field(min_length=1, max_length=32)
    expires_at: AwareDatetime | None = None
    rate_limit_per_minute: int = Field(default=60, ge=1, le=1_000_000)


class ApiKeyInfo(BaseModel):
    """A key as listed: never the key itself, only its visible prefix."""

    id: UUID
    company_id: UUID
    name: str
    prefix: str
    scopes: list[str]
    rate_limit_per_minute: int
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class ApiKeyIssued(ApiKeyInfo):
    """A new key: `key` is shown here once and never again."""

    key: str


class ApiKeyList(BaseModel):
    data: list[ApiKeyInfo]
