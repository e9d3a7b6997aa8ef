"""Reading request bodies and query strings into schema models, with 4xx errors naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, JsonValue, ValidationError
from pydantic_core import to_json

from service.core.errors import FieldError, UnsupportedMediaType, ValidationFailed
from service.gateway.middlewares import validation_failed

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
    """The body validated strictly against `model` (no "5" for 5); problems name their field path."""
    raw = await request.read()  # aiohttp enforces client_max_size here (413)
    if raw.strip() and not _is_json(request.content_type):
        raise UnsupportedMediaType()
    try:
        return model.model_validate_json(raw if raw.strip() else b"{}", strict=True)
    except ValidationError as exc:
        raise validation_failed(exc, "body") from exc


def revalidate(model: type[M], data: JsonValue) -> M:
    """Validate merged data (a stored resource with a patch applied) as a whole request body."""
    try:
        return model.model_validate_json(to_json(data), strict=True)
    except ValidationError as exc:
        raise validation_failed(exc, "body") from exc


def path_id(request: web.Request, name: str = "id") -> UUID:
    """A UUID path parameter, or a 400 naming it."""
    raw = request.match_info[name]
    try:
        return UUID(raw)
    except ValueError:
        raise ValidationFailed(
            "Invalid id", [FieldError(f"path.{name}", "must be a UUID", "uuid_parsing")]
        ) from None


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


@contextmanager
def fields_in(location: str) -> Iterator[None]:
    """Name the fields of a ValidationFailed raised below the handler as parts of `location`
    (the accounts layer says `amount_cents`; the client sent `body.amount_cents`)."""
    try:
        yield
    except ValidationFailed as exc:
        fields = [FieldError(f"{location}.{f.field}", f.message, f.type) for f in exc.fields]
        raise ValidationFailed(exc.message, fields) from exc
