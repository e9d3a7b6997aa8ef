"""Request preferences on blocking endpoints: `Prefer: wait=N` (RFC 7240) and `Idempotency-Key`
with the request fingerprint it is bound to (DESIGN.md §3)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import JsonValue

from service.domain.idempotency import fingerprint, key_problem
from service.domain.preferences import Wait, requested_wait

DEFAULT_S = 55.0

# --- Prefer: wait=N ------------------------------------------------------------------------------


def test_without_a_prefer_header_the_default_wait_applies_and_nothing_is_echoed() -> None:
    wait = requested_wait(None, DEFAULT_S)

    assert wait == Wait(DEFAULT_S, asked=False)


@pytest.mark.parametrize(
    ("prefer", "seconds"),
    [
        ("wait=10", 10),
        ("respond-async, wait=5", 5),
        ("return=minimal; wait=7", 7),
        ("WAIT = 12", 12),
        ('wait="15"', 15),
        ("wait=0", 0),
    ],
)
def test_client_wait_is_applied_and_echoed(prefer: str, seconds: int) -> None:
    wait = requested_wait(prefer, DEFAULT_S)

    assert (wait.seconds, wait.asked) == (seconds, True)
    assert wait.applied() == f"wait={seconds}"


@pytest.mark.parametrize(
    ("prefer", "seconds"),
    [("wait=120", 60), ("wait=61", 60), ("wait=-5", 0), ("wait=1e400", 60), ("wait=-inf", 0)],
)
def test_client_wait_is_clamped_to_sixty_seconds_and_never_negative(prefer: str, seconds: int) -> None:
    wait = requested_wait(prefer, DEFAULT_S)

    assert wait.seconds == seconds
    assert wait.applied() == f"wait={seconds}"


def test_a_fractional_wait_is_applied_as_the_whole_seconds_it_echoes() -> None:
    wait = requested_wait("wait=2.9", DEFAULT_S)

    assert wait.seconds == 2
    assert wait.applied() == "wait=2"


@pytest.mark.parametrize(
    "prefer", ["", "wait=soon", "wait=", "wait", "wait=nan", "return=minimal", "waiting=5"]
)
def test_unreadable_or_other_preferences_are_ignored(prefer: str) -> None:
    assert requested_wait(prefer, DEFAULT_S) == Wait(DEFAULT_S, asked=False)


def test_a_readable_wait_after_an_unreadable_one_is_used() -> None:
    assert requested_wait("wait=soon, wait=3", DEFAULT_S) == Wait(3.0, asked=True)


@given(st.text(max_size=60))
def test_any_prefer_header_gives_the_default_or_whole_seconds_within_zero_to_sixty(prefer: str) -> None:
    wait = requested_wait(prefer, DEFAULT_S)

    if wait.asked:
        assert 0 <= wait.seconds <= 60
        assert wait.seconds == int(wait.seconds)
    else:
        assert wait.seconds == DEFAULT_S


# --- Idempotency-Key -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["a", "order-123:retry", "550e8400-e29b-41d4-a716-446655440000", "k" * 255, "a b"]
)
def test_printable_ascii_keys_up_to_255_characters_are_accepted(key: str) -> None:
    assert key_problem(key) is None


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("k" * 256, "must be at most 255 characters"),
        ("clé", "must be printable ASCII"),
        ("a\tb", "must be printable ASCII"),
        ("a\x00b", "must be printable ASCII"),
    ],
    ids=["empty", "blank", "too-long", "non-ascii", "tab", "nul"],
)
def test_unusable_keys_are_refused_with_the_reason(key: str, problem: str) -> None:
    assert key_problem(key) == problem


# --- the request fingerprint ------------------------------------------------------------------------


def test_fingerprint_is_sha256_of_method_path_and_canonical_json() -> None:
    body: JsonValue = {"labels": {"env": "ci", "b": "é"}, "mode": "text"}
    canonical = '{"labels":{"b":"é","env":"ci"},"mode":"text"}'

    expected = hashlib.sha256(f"POST\n/agent-eval/cases/c1/run\n{canonical}".encode()).digest()

    assert fingerprint("POST", "/agent-eval/cases/c1/run", body) == expected


def test_fingerprint_ignores_the_method_spelling() -> None:
    assert fingerprint("post", "/runs", {"a": 1}) == fingerprint("POST", "/runs", {"a": 1})


@pytest.mark.parametrize(
    ("other_path", "other_body"),
    [
        ("/agent-eval/cases/c2/run", {"mode": "text"}),
        ("/agent-eval/cases/c1/run", {"mode": "voice"}),
        ("/agent-eval/cases/c1/run", {"mode": "text", "labels": {}}),
        ("/agent-eval/cases/c1/run", None),
    ],
    ids=["other-path", "other-value", "extra-key", "no-body"],
)
def test_a_different_request_has_a_different_fingerprint(other_path: str, other_body: JsonValue) -> None:
    original = fingerprint("POST", "/agent-eval/cases/c1/run", {"mode": "text"})

    assert fingerprint("POST", other_path, other_body) != original


def test_list_order_is_part_of_the_fingerprint() -> None:
    assert fingerprint("POST", "/x", {"tags": [1, 2]}) != fingerprint("POST", "/x", {"tags": [2, 1]})


_json: st.SearchStrategy[JsonValue] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


def _reversed_keys(value: JsonValue) -> JsonValue:
    if isinstance(value, dict):
        return {k: _reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(item) for item in value]
    return value


@given(st.dictionaries(st.text(max_size=6), _json, max_size=6))
def test_fingerprint_does_not_depend_on_key_order(body: dict[str, JsonValue]) -> None:
    reordered = _reversed_keys(body)

    assert fingerprint("POST", "/runs", reordered) == fingerprint("POST", "/runs", body)
