"""Mock tool results (`tool_policy: mock`): a synthetic success, shaped by the tool's declared
output schema, deterministic (the same schema always gives the same value) and free."""

from __future__ import annotations

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
        return [_value(items, depth + 1)] if isinstance(items, dict) and depth < MAX_DEPTH else []
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        base = low if isinstance(low, int | float) and not isinstance(low, bool) else 0
        return int(base) + (1 if "exclusiveMinimum" in schema else 0) if kind == "integer" else float(base)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema)


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
    length = schema.get("minLength")
    return "mock" if not isinstance(length, int) else "m" * max(length, 4)
