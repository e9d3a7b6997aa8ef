"""The database's JSON codec: orjson on the fast path, exact where orjson would not be."""

from __future__ import annotations

import json

import pytest

from service.db.postgres import dumps, loads


def test_documents_round_trip_compact_with_non_ascii_kept() -> None:
    value = {"text": "Grüße, 東京", "n": [1, 2.5, None, True], "nested": {"a": {"b": []}}}
    text = dumps(value)
    assert text == '{"text":"Grüße, 東京","n":[1,2.5,null,true],"nested":{"a":{"b":[]}}}'
    assert loads(text) == value


def test_integers_beyond_64_bits_are_exact_both_ways() -> None:
    big = 123456789012345678901234567890
    assert dumps({"id": big}) == '{"id":123456789012345678901234567890}'
    assert loads('{"id": 123456789012345678901234567890}') == {"id": big}
    assert loads("[-9223372036854775809]") == [-9223372036854775809]


def test_non_string_keys_are_written_as_the_standard_library_writes_them() -> None:
    assert loads(dumps({1: "a", "b": 2})) == json.loads(json.dumps({1: "a", "b": 2}))


def test_nan_and_infinity_are_written_as_null_not_refused() -> None:
    assert dumps({"score": float("nan"), "cap": float("inf")}) == '{"score":null,"cap":null}'


def test_text_that_is_not_json_is_refused() -> None:
    with pytest.raises(json.JSONDecodeError):  # orjson's error is the standard library's kind
        loads("NaN")
    with pytest.raises(json.JSONDecodeError):
        loads('{"a": ')
