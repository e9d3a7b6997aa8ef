"""Reading request bodies and query strings into schema models, with 4xx errors naming the field."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, JsonValue, ValidationError

from service.errors import FieldError, UnsupportedMediaType, ValidationFailed
from service.middlewares import validation_failed

M = TypeVar("M", bound=BaseModel)


async def read_json(request: web.Request) -> JsonValue:
    """The body as JSON; an empty body is `{}`. Non-JSON content types are refused (415)."""
    raw = await request.read()  # aiohttp enforces client_max_size here (413)
    if not raw.strip():
        return {}
    if not _is_json(request.content_type):
        raise UnsupportedMediaType()
    try:
        value: JsonValue = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers past Python's digit limit; RecursionError
        # is absurdly deep nesting. All are the client's malformed input, never a 500.
        raise ValidationFailed("Malformed JSON body", [FieldError("body", str(exc), "json_invalid")]) from exc
    return value


def _is_json(content_type: str) -> bool:
    return content_type in ("application/json", "application/octet-stream", "") or content_type.endswith(
        "+json"
    )


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The body validated against `model`; every problem is reported with its field path."""
    value = await read_json(request)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise validation_failed(exc, "body") from exc


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string validated against `model` (repeated keys become lists)."""
    params: dict[str, str | list[str]] = {}
    for key in request.query:
        values = request.query.getall(key)
        params[key] = values if len(values) > 1 else values[0]
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise validation_failed(exc, "query") from exc
