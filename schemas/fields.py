"""Field types shared by the request and response bodies: bounded text, language codes, finite
JSON, ISO 8601 query times, and the PATCH null rule."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, JsonValue, StringConstraints

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


def reject_null(value: object) -> object:
    """For `field_validator`: a PATCH may leave out a required field but not send it as null."""
    if value is None:
        raise ValueError("cannot be null")
    return value
