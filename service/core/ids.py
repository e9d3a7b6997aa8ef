"""Identifiers: UUIDv7, time-ordered, so "newest first" is an index scan (DESIGN.md §4)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import uuid6

IdFactory = Callable[[], UUID]


def new_id() -> UUID:
    """A fresh UUIDv7."""
    value: UUID = uuid6.uuid7()
    return UUID(bytes=value.bytes)
