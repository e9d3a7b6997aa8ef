"""Dashboard query strings come from GET forms, which send every field: an empty one means none."""

from __future__ import annotations

from pydantic import BeforeValidator


def _blank_is_none(value: object) -> object:
    return None if value == "" else value


BlankIsNone = BeforeValidator(_blank_is_none)  # Annotated[X | None, BlankIsNone]
