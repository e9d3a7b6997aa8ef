"""Mock tool results (`tool_policy: mock`): a deterministic success that fits the tool's output schema."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import JsonValue

from service.domain.mocks import mock_result

Schema = dict[str, JsonValue]


def assert_fits(value: JsonValue, schema: Schema) -> None:
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    problems = [error.message for error in validator.iter_errors(value)]
    assert problems == [], f"{value!r} does not fit {schema!r}"


ORDER_PROPERTIES: Schema = {
    "order_id": {"type": "string", "format": "uuid"},
    "status": {"enum": ["shipped", "pending"]},
    "placed_at": {"type": "string", "format": "date-time"},
    "contact": {"type": "string", "format": "email"},
    "items": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}}}},
    "paid": {"type": "boolean"},
    "note": {"type": ["null", "string"]},
}
ORDER: Schema = {
    "type": "object",
    "properties": ORDER_PROPERTIES,
    "required": ["order_id", "status", "placed_at", "items", "paid"],
}


def test_a_tool_without_output_schema_returns_ok() -> None:
    assert mock_result(None) == {"ok": True}
    assert mock_result({}) == {"ok": True}


def test_an_order_schema_gets_an_order_shaped_result() -> None:
    result = mock_result(ORDER)

    assert isinstance(result, dict)
    assert set(result) == set(ORDER_PROPERTIES)
    assert result["status"] == "shipped"
    assert result["items"] == [{"qty": 0}]
    assert_fits(result, ORDER)


def test_the_same_schema_always_gives_the_same_result() -> None:
    assert mock_result(ORDER) == mock_result(ORDER)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"const": "fixed", "type": "string"}, "fixed"),
        ({"type": "integer", "default": 42}, 42),
        ({"enum": ["gold", "silver"]}, "gold"),
        ({"type": "string", "examples": ["ACME-1"]}, "ACME-1"),
        ({"oneOf": [{"type": "boolean"}, {"type": "string"}]}, True),
    ],
    ids=["const", "default", "enum", "examples", "oneOf"],
)
def test_values_the_schema_names_are_used_as_they_are(schema: Schema, expected: JsonValue) -> None:
    assert mock_result(schema) == expected
    assert_fits(mock_result(schema), schema)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "minimum": 3},
        {"type": "integer", "exclusiveMinimum": 3},
        {"type": "number", "minimum": 2.5},
        {"type": "string", "minLength": 10},
        {"type": "string", "format": "date"},
        {"type": "string", "format": "uri"},
        {"type": "null"},
        {"type": ["string", "null"]},
        {"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}}, {"type": "null"}]},
    ],
    ids=str,
)
def test_result_fits_the_declared_constraints(schema: Schema) -> None:
    assert_fits(mock_result(schema), schema)


def test_a_positive_number_is_mocked_as_a_positive_number() -> None:
    schema: Schema = {"type": "number", "exclusiveMinimum": 0}

    assert_fits(mock_result(schema), schema)


def test_a_two_letter_code_is_mocked_with_two_letters() -> None:
    schema: Schema = {"type": "string", "minLength": 2, "maxLength": 2}

    assert_fits(mock_result(schema), schema)


def test_an_array_with_min_items_is_mocked_with_enough_items() -> None:
    schema: Schema = {"type": "array", "items": {"type": "string"}, "minItems": 2}

    assert_fits(mock_result(schema), schema)


# --- any schema built from the supported keywords --------------------------------------------------

_leaves: st.SearchStrategy[Schema] = st.one_of(
    st.just({"type": "string"}),
    st.integers(min_value=0, max_value=50).map(lambda n: {"type": "string", "minLength": n}),
    st.sampled_from(["date-time", "date", "email", "uri", "uuid"]).map(
        lambda f: {"type": "string", "format": f}
    ),
    st.integers(min_value=-5, max_value=5).map(lambda n: {"type": "integer", "minimum": n}),
    st.integers(min_value=-5, max_value=5).map(lambda n: {"type": "integer", "exclusiveMinimum": n}),
    st.floats(min_value=-5, max_value=5).map(lambda n: {"type": "number", "minimum": n}),
    st.sampled_from([{"type": "boolean"}, {"type": "null"}, {"type": ["integer", "null"]}]),
    st.lists(st.text(max_size=5), min_size=1, max_size=3).map(lambda xs: {"enum": list(xs)}),
)


def _objects(children: st.SearchStrategy[Schema]) -> st.SearchStrategy[Schema]:
    def as_object(properties: dict[str, Schema]) -> Schema:
        declared: dict[str, JsonValue] = {name: schema for name, schema in properties.items()}
        required: list[JsonValue] = [*properties]
        return {"type": "object", "properties": declared, "required": required}

    return st.one_of(
        st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4).map(as_object),
        children.map(lambda items: {"type": "array", "items": items}),
        st.lists(children, min_size=1, max_size=3).map(lambda options: {"anyOf": list(options)}),
    )


def _nested(levels: int) -> st.SearchStrategy[Schema]:
    """Schemas at most `levels` deep (well inside the mock's depth limit)."""
    schemas = _leaves
    for _ in range(levels):
        schemas = st.one_of(_leaves, _objects(schemas))
    return schemas


@given(_nested(3))
def test_result_of_any_supported_schema_validates_against_it(schema: Schema) -> None:
    assert_fits(mock_result(schema), schema)
