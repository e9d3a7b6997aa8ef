"""Shapes shared by every resource: list envelopes, list queries, bounded text and numbers."""

from __future__ import annotations

import math
import re
from typing import Annotated, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)

T = TypeVar("T")

MAX_OFFSET = 1_000_000
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
ShortText = Annotated[str, StringConstraints(max_length=2_000)]
LongText = Annotated[str, StringConstraints(max_length=100_000)]
Language = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"),
    Field(description="ISO 639 language code, optionally with a region (`en`, `he`, `pt-BR`)."),
]


def _finite(value: JsonValue) -> JsonValue:
    """JSON has no Infinity or NaN (1e400 parses to inf); refuse them anywhere in a document."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    if isinstance(value, dict):
        for item in value.values():
            _finite(item)
    elif isinstance(value, list):
        for item in value:
            _finite(item)
    return value


JsonObject = Annotated[dict[str, JsonValue], AfterValidator(_finite)]
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_text(value: object) -> object:
    """Query strings carry text: take ISO 8601 only (pydantic would also read "0.5" as a Unix time)."""
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("must be an ISO 8601 date-time with a timezone, e.g. 2026-01-31T00:00:00Z")
    return value


QueryDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]


class Body(BaseModel):
    """Base of every request body: unknown fields are errors, types are strict (no "5" for 5)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Patch(Body):
    """Base of PATCH bodies and overrides: only the fields that were sent exist, on input and output."""

    @model_serializer(mode="wrap")
    def _only_sent(self, handler: SerializerFunctionWrapHandler) -> JsonObject:
        data: JsonObject = handler(self)
        return {key: value for key, value in data.items() if key in self.model_fields_set}

    def changes(self) -> JsonObject:
        """Exactly the fields the client sent, as JSON values."""
        dumped: JsonObject = self.model_dump(mode="json")
        return dumped


class Query(BaseModel):
    """Base of every query string: unknown parameters are errors (values arrive as text)."""

    model_config = ConfigDict(extra="forbid")


class ListQuery(Query):
    """`limit` (1-100, default 20; more is an error, never clamped) and `offset`."""

    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class Pagination(BaseModel):
    total: int
    limit: int
    offset: int
    has_more: bool


class Page(BaseModel, Generic[T]):
    """Every list response: `{"data": [...], "pagination": {...}}`."""

    data: list[T]
    pagination: Pagination


def reject_null(value: object) -> object:
    """For `field_validator`: a PATCH may leave out a required field but not send it as null."""
    if value is None:
        raise ValueError("cannot be null")
    return value


def page_of(items: list[T], total: int, query: ListQuery) -> Page[T]:
    """The envelope for one page of `total` items."""
    return Page[T](
        data=items,
        pagination=Pagination(
            total=total, limit=query.limit, offset=query.offset, has_more=query.offset + len(items) < total
        ),
    )
