"""`args_match` for `must_call_tool`: equality on the given keys, `"$present"` = present and not null."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import JsonValue

PRESENT = "$present"


def json_equal(expected: JsonValue, actual: JsonValue) -> bool:
    """Deep JSON equality: objects by keys, arrays by position, numbers by value (1 == 1.0), but a
    boolean is never a number (true != 1)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return expected == actual
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(json_equal(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            json_equal(e, a) for e, a in zip(expected, actual, strict=True)
        )
    return type(expected) is type(actual) and expected == actual


def mismatches(expected: Mapping[str, JsonValue], actual: Mapping[str, JsonValue]) -> list[str]:
    """Why `actual` does not match, one phrase per key (empty when it matches)."""
    problems: list[str] = []
    for key, want in expected.items():
        if want == PRESENT:
            if actual.get(key) is None:
                problems.append(f"{key} is missing")
        elif key not in actual:
            problems.append(f"{key} is missing")
        elif not json_equal(want, actual[key]):
            problems.append(f"{key} is {_show(actual[key])}, expected {_show(want)}")
    return problems


def _show(value: JsonValue) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
