"""Mock tool results (`tool_policy: mock`): a synthetic success, shaped by the tool's declared
output schema, deterministic (the same schema always gives the same value) and free."""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import JsonValue

MAX_DEPTH = 6


def mock_result(output_schema: Mapping[str, JsonValue] | None) -> JsonValue:
    """A value that fits `output_schema`; `{"ok": true}` without one."""
    if not output_schema:
        return {"ok": True}
    return _value(output_schema, 0)


def _value(schema: Mapping[str, JsonValue], depth: int) -> JsonValue:
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    for key in ("enum", "examples"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return options[0]
    for key in ("oneOf", "anyOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options and isinstance(options[0], dict):
            return _value(options[0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return _of_type(str(kind) if kind else "object", schema, depth)


def _of_type(kind: str, schema: Mapping[str, JsonValue], depth: int) -> JsonValue:
    if kind == "object":
        properties = schema.get("properties")
        if depth >= MAX_DEPTH or not isinstance(properties, dict):
            return {}
        return {k: _value(v, depth + 1) for k, v in properties.items() if isinstance(v, dict)}
    if kind == "array":
        items = schema.get("items")
        if not isinstance(items, dict) or depth >= MAX_DEPTH:
            return []
        count = max(1, _int(schema, "minItems", 0))
        count = min(count, _int(schema, "maxItems", count))
        return [_value(items, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema)


def _int(schema: Mapping[str, JsonValue], key: str, default: int) -> int:
    value = schema.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _bound(schema: Mapping[str, JsonValue], key: str) -> float | None:
    value = schema.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _number(schema: Mapping[str, JsonValue], *, integer: bool) -> int | float:
    """0, or the smallest value the bounds allow (one above an exclusive minimum)."""
    step = 1.0
    low, low_open = _bound(schema, "minimum"), _bound(schema, "exclusiveMinimum")
    high, high_open = _bound(schema, "maximum"), _bound(schema, "exclusiveMaximum")
    value = 0.0
    if low is not None or low_open is not None:
        value = max(x for x in (low, None if low_open is None else low_open + step) if x is not None)
    elif high is not None or high_open is not None:
        value = min(x for x in (high, None if high_open is None else high_open - step) if x is not None)
        value = min(value, 0.0)
    if integer:
        return math.ceil(value)
    return value


def _string(schema: Mapping[str, JsonValue]) -> str:
    formats = {
        "date-time": "2026-01-01T00:00:00Z",
        "date": "2026-01-01",
        "email": "user@example.com",
        "uri": "https://example.com",
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in formats:
        return formats[fmt]
    shortest, longest = _int(schema, "minLength", 0), _int(schema, "maxLength", 1_000_000)
    text = "mock" if shortest <= 4 else "m" * shortest
    return text[: max(shortest, min(len(text), longest))]
