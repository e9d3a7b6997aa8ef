"""Pricing (DESIGN.md §7): exact integer microcents per call, whole cents per run split by largest
remainder, and the rate card read from AGENT_EVAL_RATE_CARD."""

from __future__ import annotations

import json
import math
import os
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import JsonValue, ValidationError

from schemas.rates import DEFAULT_RATE_CARD, Price, RateCard, Role, RolePrices
from service.core.settings import Settings
from service.domain.pricing import (
    MICROCENTS_PER_CENT,
    Bill,
    Call,
    Usage,
    bill,
    price_call,
    price_calls,
    price_turn,
)

CARD = RateCard(
    version="test-2026-01",
    agent=RolePrices(
        input_cents_per_million=Decimal(200),
        output_cents_per_million=Decimal(1000),
        models={
            "openai:gpt-4o": Price(
                input_cents_per_million=Decimal(250), output_cents_per_million=Decimal(1500)
            )
        },
    ),
    persona=RolePrices(input_cents_per_million=Decimal(100), output_cents_per_million=Decimal(400)),
    judge=RolePrices(input_cents_per_million=Decimal("7.5"), output_cents_per_million=Decimal("0.1")),
)


def card_json() -> dict[str, JsonValue]:
    return {
        "version": "v7",
        "agent": {
            "input_cents_per_million": 200,
            "output_cents_per_million": 1000,
            "models": {"openai:gpt-4o": {"input_cents_per_million": 0.1, "output_cents_per_million": 7.5}},
        },
        "persona": {"input_cents_per_million": 100, "output_cents_per_million": 400},
        "judge": {"input_cents_per_million": 0, "output_cents_per_million": 0},
    }


# --- price_call --------------------------------------------------------------------------------


def test_a_call_costs_input_and_output_tokens_at_the_role_price() -> None:
    priced = price_call(CARD, "agent", None, 1_000, 500)

    assert priced.cost_microcents == 1_000 * 200 + 500 * 1_000
    assert type(priced.cost_microcents) is int


def test_x_cents_per_million_tokens_is_x_microcents_per_token() -> None:
    assert price_call(CARD, "agent", None, 1, 0).cost_microcents == 200
    assert price_call(CARD, "agent", None, 0, 1).cost_microcents == 1_000
    assert price_call(CARD, "agent", None, 1_000_000, 0).cost_microcents == 200 * MICROCENTS_PER_CENT


@pytest.mark.parametrize(("role", "expected"), [("agent", 1_200), ("persona", 500), ("judge", 8)])
def test_each_role_has_its_own_price(role: Role, expected: int) -> None:
    assert price_call(CARD, role, None, 1, 1).cost_microcents == expected


@pytest.mark.parametrize(
    ("input_tokens", "output_tokens", "expected"),
    [
        (1, 0, 8),  # 7.5 → 8, never 7
        (2, 0, 15),  # exactly 15
        (3, 0, 23),  # 22.5 → 23
        (0, 1, 1),  # 0.1 → 1
        (0, 10, 1),  # exactly 1, no binary-float residue
        (0, 11, 2),  # 1.1 → 2
        (1, 5, 8),  # 7.5 + 0.5 = 8 exactly
        (0, 0, 0),
    ],
)
def test_fractional_prices_round_up_to_a_whole_microcent(
    input_tokens: int, output_tokens: int, expected: int
) -> None:
    assert price_call(CARD, "judge", None, input_tokens, output_tokens).cost_microcents == expected


@given(
    st.decimals(min_value=0, max_value=100_000, places=4),
    st.decimals(min_value=0, max_value=100_000, places=4),
    st.integers(0, 10_000_000),
    st.integers(0, 10_000_000),
)
def test_a_price_is_the_exact_cost_rounded_up_never_down(
    input_price: Decimal, output_price: Decimal, input_tokens: int, output_tokens: int
) -> None:
    prices = RolePrices(input_cents_per_million=input_price, output_cents_per_million=output_price)
    card = RateCard(version="p", agent=prices, persona=prices, judge=prices)
    exact = input_tokens * input_price + output_tokens * output_price

    cost = price_call(card, "agent", None, input_tokens, output_tokens).cost_microcents

    assert exact <= cost < exact + 1


def test_a_model_override_applies_by_its_full_name() -> None:
    assert price_call(CARD, "agent", "openai:gpt-4o", 1, 1).cost_microcents == 250 + 1_500


@pytest.mark.parametrize("model", [None, "", "gpt-4o", "openai:gpt-4o-mini", "other:gpt-4o", "OPENAI:GPT-4O"])
def test_other_model_names_get_the_role_default(model: str | None) -> None:
    assert price_call(CARD, "agent", model, 1, 1).cost_microcents == 200 + 1_000


def test_a_model_override_belongs_to_its_role_only() -> None:
    assert price_call(CARD, "persona", "openai:gpt-4o", 1, 1).cost_microcents == 100 + 400


def test_the_rate_card_version_is_returned() -> None:
    assert price_call(CARD, "persona", None, 10, 10).rate_card_version == "test-2026-01"
    assert price_call(DEFAULT_RATE_CARD, "agent", None, 0, 0).rate_card_version == DEFAULT_RATE_CARD.version


@pytest.mark.parametrize(("input_tokens", "output_tokens"), [(-1, 0), (0, -1), (-5, -5)])
def test_negative_token_counts_are_refused(input_tokens: int, output_tokens: int) -> None:
    with pytest.raises(ValueError, match="negative"):
        price_call(CARD, "agent", None, input_tokens, output_tokens)


def test_the_default_card_prices_the_published_rates() -> None:
    assert price_call(DEFAULT_RATE_CARD, "agent", None, 1_000_000, 1_000_000).cost_microcents == 1_200_000_000
    assert price_call(DEFAULT_RATE_CARD, "persona", None, 1_000_000, 1_000_000).cost_microcents == 500_000_000
    assert price_call(DEFAULT_RATE_CARD, "judge", None, 1, 1).cost_microcents == 1_200


# --- bill --------------------------------------------------------------------------------------


def test_nothing_costs_nothing() -> None:
    assert bill(0, 0, 0) == Bill(0, 0, 0, 0)


@pytest.mark.parametrize(
    ("microcents", "total"),
    [
        ((1, 0, 0), 1),
        ((999_999, 0, 0), 1),
        ((1_000_000, 0, 0), 1),
        ((1_000_001, 0, 0), 2),
        ((500_000, 500_000, 0), 1),
        ((500_000, 500_000, 1), 2),
        ((1_000_000, 1_000_000, 1_000_000), 3),
        ((123_456_789, 0, 987_654_321), 1_112),
    ],
)
def test_the_total_is_the_sum_of_microcents_rounded_up_to_a_cent(
    microcents: tuple[int, int, int], total: int
) -> None:
    assert bill(*microcents).total_cost_cents == total


@pytest.mark.parametrize(
    ("microcents", "expected"),
    [
        ((2_000_000, 3_000_000, 5_000_000), Bill(2, 3, 5, 10)),  # whole cents split exactly
        ((100_000, 300_000, 200_000), Bill(0, 1, 0, 1)),  # the largest remainder gets the cent
        ((2_100_000, 500_000, 900_000), Bill(2, 1, 1, 4)),
        ((1_999_999, 1, 0), Bill(2, 0, 0, 2)),
        ((0, 0, 1), Bill(0, 0, 1, 1)),
        ((1_000_000, 1, 0), Bill(1, 1, 0, 2)),
    ],
)
def test_the_role_columns_are_split_by_largest_remainder(
    microcents: tuple[int, int, int], expected: Bill
) -> None:
    assert bill(*microcents) == expected


@pytest.mark.parametrize(
    ("microcents", "expected"),
    [
        ((1, 1, 1), Bill(1, 0, 0, 1)),
        ((0, 1, 1), Bill(0, 1, 0, 1)),
        ((1, 0, 1), Bill(1, 0, 0, 1)),
        ((400_000, 400_000, 400_000), Bill(1, 1, 0, 2)),
        ((333_334, 333_333, 333_333), Bill(1, 0, 0, 1)),
        ((1, 999_999, 1), Bill(1, 1, 0, 2)),
        ((5_500_000, 500_000, 500_000), Bill(6, 1, 0, 7)),
    ],
)
def test_ties_go_to_agent_then_persona_then_judge(microcents: tuple[int, int, int], expected: Bill) -> None:
    assert bill(*microcents) == expected


@pytest.mark.parametrize("microcents", [(-1, 0, 0), (0, -1, 0), (0, 0, -1)])
def test_negative_costs_are_refused(microcents: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="negative"):
        bill(*microcents)


@given(st.tuples(*[st.integers(0, 10**12)] * 3))
def test_the_role_columns_always_sum_to_the_rounded_up_total(microcents: tuple[int, int, int]) -> None:
    result = bill(*microcents)
    parts = (result.agent_cost_cents, result.persona_cost_cents, result.judge_cost_cents)
    remainders = [m % MICROCENTS_PER_CENT for m in microcents]
    rounded_up = [part > m // MICROCENTS_PER_CENT for part, m in zip(parts, microcents, strict=True)]

    assert result.total_cost_cents == math.ceil(Decimal(sum(microcents)) / MICROCENTS_PER_CENT)
    assert sum(parts) == result.total_cost_cents
    for part, share in zip(parts, microcents, strict=True):
        assert share // MICROCENTS_PER_CENT <= part <= -(-share // MICROCENTS_PER_CENT)
    for up in range(3):
        for down in range(3):
            if rounded_up[up] and not rounded_up[down]:
                assert (-remainders[up], up) < (-remainders[down], down)


@given(st.tuples(*[st.integers(0, 10**6)] * 3))
def test_billing_the_same_costs_twice_gives_the_same_bill(microcents: tuple[int, int, int]) -> None:
    assert bill(*microcents) == bill(*microcents)


# --- the rate card -----------------------------------------------------------------------------


def test_a_rate_card_is_read_from_json_with_exact_decimal_prices() -> None:
    card = RateCard.model_validate_json(json.dumps(card_json()))

    assert card.version == "v7"
    override = card.agent.models["openai:gpt-4o"]
    assert override.input_cents_per_million == Decimal("0.1")
    assert override.output_cents_per_million == Decimal("7.5")
    assert price_call(card, "agent", "openai:gpt-4o", 10, 0).cost_microcents == 1
    assert price_call(card, "agent", "openai:gpt-4o", 0, 1).cost_microcents == 8


def test_a_rate_card_refuses_unknown_top_level_keys() -> None:
    data = card_json() | {"currency": "usd"}

    with pytest.raises(ValidationError, match="currency"):
        RateCard.model_validate_json(json.dumps(data))


@pytest.mark.parametrize(
    "path",
    [("agent",), ("persona",), ("agent", "models", "openai:gpt-4o")],
)
def test_a_rate_card_refuses_unknown_keys_inside_prices(path: tuple[str, ...]) -> None:
    data = card_json()
    target = data
    for key in path:
        inner = target[key]
        assert isinstance(inner, dict)
        target = inner
    target["cached_input_cents_per_million"] = 50

    with pytest.raises(ValidationError, match="cached_input_cents_per_million"):
        RateCard.model_validate_json(json.dumps(data))


@pytest.mark.parametrize(
    ("role", "field"),
    [
        ("agent", "input_cents_per_million"),
        ("persona", "output_cents_per_million"),
        ("judge", "input_cents_per_million"),
    ],
)
def test_a_rate_card_refuses_negative_prices(role: str, field: str) -> None:
    data = card_json()
    prices = data[role]
    assert isinstance(prices, dict)
    prices[field] = -1

    with pytest.raises(ValidationError, match=field):
        RateCard.model_validate_json(json.dumps(data))


def test_a_rate_card_refuses_a_negative_model_override() -> None:
    data = card_json()
    data["agent"] = {
        "input_cents_per_million": 1,
        "output_cents_per_million": 1,
        "models": {"openai:gpt-4o": {"input_cents_per_million": 1, "output_cents_per_million": -0.5}},
    }

    with pytest.raises(ValidationError, match="output_cents_per_million"):
        RateCard.model_validate_json(json.dumps(data))


@pytest.mark.parametrize("missing", ["version", "agent", "persona", "judge"])
def test_a_rate_card_needs_a_version_and_every_role(missing: str) -> None:
    data = card_json()
    del data[missing]

    with pytest.raises(ValidationError, match=missing):
        RateCard.model_validate_json(json.dumps(data))


def test_a_rate_card_version_cannot_be_empty() -> None:
    with pytest.raises(ValidationError, match="version"):
        RateCard.model_validate_json(json.dumps(card_json() | {"version": ""}))


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's shell may export AGENT_EVAL_* variables: start without them."""
    for name in list(os.environ):
        if name.upper().startswith("AGENT_EVAL_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_environment")
def test_the_rate_card_is_read_from_agent_eval_rate_card(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_EVAL_RATE_CARD", json.dumps(card_json()))

    card = Settings().rate_card

    assert card == RateCard.model_validate_json(json.dumps(card_json()))
    assert price_call(card, "agent", "openai:gpt-4o", 10, 1).cost_microcents == 9


@pytest.mark.usefixtures("clean_environment")
def test_without_agent_eval_rate_card_the_default_card_applies() -> None:
    assert Settings().rate_card == DEFAULT_RATE_CARD


@pytest.mark.usefixtures("clean_environment")
def test_an_invalid_agent_eval_rate_card_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_EVAL_RATE_CARD", json.dumps(card_json() | {"surprise": 1}))

    with pytest.raises(ValidationError, match="surprise"):
        Settings()


# --- price_turn and price_calls ----------------------------------------------------------------


@pytest.mark.parametrize("role", ["agent", "persona"])
def test_a_model_turn_costs_its_tokens_at_its_role_price(role: Role) -> None:
    priced = price_turn(CARD, role, "openai:gpt-4o", 1_000, 10)

    assert priced == price_call(CARD, role, "openai:gpt-4o", 1_000, 10)


def test_tool_results_cost_nothing() -> None:
    assert price_turn(CARD, "tool_result", "openai:gpt-4o", 1_000, 10) is None


def test_a_flow_event_made_by_a_model_call_is_priced_as_the_agents() -> None:
    priced = price_turn(CARD, "flow_event", "openai:gpt-4o", 1_000, 10)

    assert priced == price_call(CARD, "agent", "openai:gpt-4o", 1_000, 10)
    assert price_turn(CARD, "flow_event", None, 0, 0) is None  # entering a node is free


def test_a_turn_without_a_model_costs_nothing() -> None:
    assert price_turn(CARD, "agent", None, 1_000, 10) is None


def test_the_judge_calls_of_a_run_add_up_their_tokens_and_exact_costs() -> None:
    calls = [Call("openai:gpt-4o", 100, 7), Call(None, 50, 3)]

    usage = price_calls(CARD, "judge", calls)

    assert usage.input_tokens == 150
    assert usage.output_tokens == 10
    assert usage.cost_microcents == sum(
        price_call(CARD, "judge", c.model, c.input_tokens, c.output_tokens).cost_microcents for c in calls
    )
    assert usage.rate_card_version == CARD.version


def test_no_judge_calls_price_nothing_and_name_no_card() -> None:
    assert price_calls(CARD, "judge", []) == Usage()
