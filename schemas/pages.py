"""Lists: the `limit`/`offset` query (more than 100 is an error, never clamped) and the
`{"data", "pagination"}` envelope of every list response."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from schemas.bodies import Query

T = TypeVar("T")

MAX_OFFSET = 1_000_000


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


def page_of(items: list[T], total: int, query: ListQuery) -> Page[T]:
    """The envelope for one page of `total` items."""
    return Page[T](
        data=items,
        pagination=Pagination(
            total=total, limit=query.limit, offset=query.offset, has_more=query.offset + len(items) < total
        ),
    )
