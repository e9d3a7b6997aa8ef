"""API keys: `ae_live_` + 32 base62 characters, a 12-character shown prefix, SHA-256 at rest."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.apikeys import (
    KEY_PREFIX,
    RANDOM_BYTES,
    SCOPES,
    format_api_key,
    hash_api_key,
    is_well_formed,
    shown_prefix,
    unknown_scopes,
)

BODY_SPACE = 62**32  # how many distinct key bodies exist
WELL_FORMED = KEY_PREFIX + "0123456789abcdefghijABCDEFGHIJxy"


def test_a_key_is_the_prefix_and_32_base62_characters() -> None:
    key = format_api_key(bytes(range(32)))

    assert key.startswith("ae_live_")
    assert len(key) == len("ae_live_") + 32
    assert key[len("ae_live_") :].isalnum()
    assert key.isascii()


def test_all_zero_bytes_give_a_body_of_zeros() -> None:
    assert format_api_key(bytes(32)) == "ae_live_" + "0" * 32


@pytest.mark.parametrize(
    ("number", "body"),
    [
        (9, "9" + "0" * 31),
        (10, "a" + "0" * 31),
        (61, "Z" + "0" * 31),
        (62, "01" + "0" * 30),
        (62**31, "0" * 31 + "1"),
        (62**32 - 1, "Z" * 32),
    ],
)
def test_the_body_is_the_number_in_base62_least_significant_digit_first(number: int, body: str) -> None:
    assert format_api_key(number.to_bytes(RANDOM_BYTES, "big")) == "ae_live_" + body


def test_bytes_that_agree_modulo_the_body_space_give_the_same_key() -> None:
    drawn = bytes(range(32))
    wrapped = (int.from_bytes(drawn, "big") + BODY_SPACE).to_bytes(RANDOM_BYTES, "big")

    assert wrapped != drawn
    assert format_api_key(wrapped) == format_api_key(drawn)


def test_fewer_random_bytes_than_needed_are_refused() -> None:
    with pytest.raises(ValueError, match="need 32 random bytes, got 31"):
        format_api_key(bytes(31))


def test_bytes_beyond_the_first_32_do_not_change_the_key() -> None:
    drawn = bytes(range(1, 33))

    assert format_api_key(drawn + b"\xff" * 8) == format_api_key(drawn)


@given(st.binary(min_size=RANDOM_BYTES, max_size=RANDOM_BYTES))
def test_any_32_random_bytes_give_a_well_formed_key(drawn: bytes) -> None:
    assert is_well_formed(format_api_key(drawn))


@given(
    st.binary(min_size=RANDOM_BYTES, max_size=RANDOM_BYTES),
    st.binary(min_size=RANDOM_BYTES, max_size=RANDOM_BYTES),
)
def test_different_bytes_give_different_keys_unless_they_agree_modulo_the_body_space(
    first: bytes, second: bytes
) -> None:
    same_body = int.from_bytes(first, "big") % BODY_SPACE == int.from_bytes(second, "big") % BODY_SPACE

    assert (format_api_key(first) == format_api_key(second)) == same_body


def test_distinct_draws_give_distinct_keys() -> None:
    draws = [hashlib.sha256(str(i).encode()).digest() for i in range(500)]

    assert len({format_api_key(d) for d in draws}) == len(draws)


def test_the_shown_prefix_is_the_first_12_characters() -> None:
    assert shown_prefix(WELL_FORMED) == "ae_live_0123"
    assert len(shown_prefix(format_api_key(bytes(range(32))))) == 12


def test_the_stored_hash_is_the_sha256_digest_of_the_key() -> None:
    digest = hash_api_key(WELL_FORMED)

    assert digest == hashlib.sha256(WELL_FORMED.encode()).digest()
    assert len(digest) == 32


def test_different_keys_hash_differently() -> None:
    other = WELL_FORMED[:-1] + "z"

    assert hash_api_key(WELL_FORMED) != hash_api_key(other)


def test_a_well_formed_key_is_recognised() -> None:
    assert is_well_formed(WELL_FORMED)


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "ae_live_",
        "ae_test_0123456789abcdefghijABCDEFGHIJxy",
        "AE_LIVE_0123456789abcdefghijABCDEFGHIJxy",
        WELL_FORMED[:-1],
        WELL_FORMED + "z",
        WELL_FORMED[:-1] + "-",
        WELL_FORMED[:-1] + "é",
        " " + WELL_FORMED,
        WELL_FORMED + " ",
        "Bearer " + WELL_FORMED,
    ],
)
def test_malformed_keys_are_not_well_formed(candidate: str) -> None:
    assert not is_well_formed(candidate)


def test_a_key_with_a_trailing_newline_is_not_well_formed() -> None:
    assert not is_well_formed(WELL_FORMED + "\n")


def test_unknown_scopes_are_listed_in_the_order_given() -> None:
    requested = ["agents:read", "nope", "billing:read", "agent_eval:admin", "nope"]

    assert unknown_scopes(requested) == ["nope", "agent_eval:admin", "nope"]


def test_every_known_scope_is_accepted() -> None:
    assert unknown_scopes(SCOPES) == []
    assert unknown_scopes(list(SCOPES)) == []


def test_scopes_are_matched_exactly() -> None:
    assert unknown_scopes(["Agents:read", "agents:read ", "agents"]) == [
        "Agents:read",
        "agents:read ",
        "agents",
    ]
