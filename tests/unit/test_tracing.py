"""W3C trace context: parsing `traceparent`, continuing a trace, and child span ids."""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable
from typing import TypeVar

import pytest

from service.core.tracing import child_traceparent, parse_trace_id, start_trace

T = TypeVar("T")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{SPAN_ID}-01"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


def _isolated(call: Callable[[], T]) -> T:
    """Run in an empty context so the current trace never leaks between tests."""
    return contextvars.Context().run(call)


def test_a_valid_traceparent_gives_its_trace_id() -> None:
    assert parse_trace_id(VALID) == TRACE_ID


def test_an_unsampled_traceparent_is_still_valid() -> None:
    assert parse_trace_id(f"00-{TRACE_ID}-{SPAN_ID}-00") == TRACE_ID


def test_surrounding_whitespace_is_tolerated() -> None:
    assert parse_trace_id(f"  {VALID}\t") == TRACE_ID


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"01-{TRACE_ID}-{SPAN_ID}-01",
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",
        f"00-{TRACE_ID}0-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{SPAN_ID[:-1]}-01",
        f"00-{TRACE_ID}-{SPAN_ID}-1",
        f"00-{TRACE_ID}-{SPAN_ID}",
        f"00-{TRACE_ID[:-1]}g-{SPAN_ID}-01",
        f"00_{TRACE_ID}_{SPAN_ID}_01",
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",
        f"00-{'0' * 32}-{SPAN_ID}-01",
    ],
)
def test_a_malformed_or_all_zero_traceparent_gives_no_trace_id(header: str | None) -> None:
    assert parse_trace_id(header) is None


def test_a_traceparent_with_an_all_zero_parent_id_gives_no_trace_id() -> None:
    assert parse_trace_id(f"00-{TRACE_ID}-{'0' * 16}-01") is None


def test_starting_a_trace_continues_the_callers_trace() -> None:
    assert _isolated(lambda: start_trace(VALID)) == TRACE_ID


@pytest.mark.parametrize("header", [None, "garbage", f"00-{'0' * 32}-{SPAN_ID}-01"])
def test_without_a_usable_traceparent_a_fresh_trace_starts(header: str | None) -> None:
    trace_id = _isolated(lambda: start_trace(header))

    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert trace_id != "0" * 32
    assert trace_id != TRACE_ID


def test_fresh_traces_differ() -> None:
    assert _isolated(start_trace) != _isolated(start_trace)


def test_a_child_traceparent_keeps_the_trace_id_with_a_fresh_span_id() -> None:
    def emit_two() -> tuple[str, str]:
        start_trace(VALID)
        return child_traceparent(), child_traceparent()

    first, second = _isolated(emit_two)

    for child in (first, second):
        match = _TRACEPARENT.fullmatch(child)
        assert match is not None
        assert match[1] == TRACE_ID
        assert match[2] != SPAN_ID
        assert parse_trace_id(child) == TRACE_ID
    assert first != second


def test_a_child_traceparent_follows_the_trace_started_in_its_own_context() -> None:
    def emit() -> str:
        trace_id = start_trace()
        child = child_traceparent()
        assert parse_trace_id(child) == trace_id
        return trace_id

    assert _isolated(emit) != _isolated(emit)


def test_a_child_traceparent_without_a_current_trace_is_still_valid() -> None:
    child = _isolated(child_traceparent)

    assert _TRACEPARENT.fullmatch(child)
    assert parse_trace_id(child) is not None
