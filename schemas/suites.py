"""Suites (`/agent-eval/suites`): cases run together, `parallelism` at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from schemas.bodies import Body, Patch
from schemas.fields import Name, ShortText, reject_null

Parallelism = Field(default=1, ge=1, le=16, description="How many of its cases run at once (1-16).")


class SuiteFields(Body):
    name: Name
    description: ShortText | None = None
    agent_id: UUID | None = Field(default=None, description="Default agent for cases added without one.")
    parallelism: int = Parallelism


class SuiteCreate(SuiteFields):
    pass


class SuitePatch(Patch):
    name: Name | SkipJsonSchema[None] = None
    description: ShortText | None = None
    agent_id: UUID | None = None
    parallelism: Annotated[int, Field(ge=1, le=16)] | SkipJsonSchema[None] = None

    _not_null = field_validator("name", "parallelism")(reject_null)


class Suite(SuiteFields):
    model_config = ConfigDict(extra="forbid", strict=False)

    id: UUID
    company_id: UUID
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
