"""Webhook decisions (DESIGN.md §8): how an answer is read, when the next attempt is due,
Retry-After, when an endpoint is disabled, what a secret looks like, who is subscribed."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from service.domain.webhooks import (
    Outcome,
    format_secret,
    next_attempt,
    outcome_of,
    retry_after_s,
    should_disable,
    signed_content,
    subscribed,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
# Delays before attempts 2..8: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DELAYS_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DAY_S = 86_400.0


def delay_s(retry_at: datetime | None) -> float:
    assert retry_at is not None
    return (retry_at - NOW).total_seconds()


# --- outcome_of --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (201, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (299, Outcome.DELIVERED),
        (300, Outcome.FAILED),
        (301, Outcome.FAILED),
        (302, Outcome.FAILED),
        (308, Outcome.FAILED),
        (400, Outcome.FAILED),
        (404, Outcome.FAILED),
        (410, Outcome.GONE),
        (429, Outcome.THROTTLED),
        (500, Outcome.FAILED),
        (502, Outcome.FAILED),
        (503, Outcome.THROTTLED),
        (100, Outcome.FAILED),
        (None, Outcome.FAILED),
    ],
)
def test_an_answer_is_read_as_delivered_failed_gone_or_throttled(
    status: int | None, outcome: Outcome
) -> None:
    assert outcome_of(status) is outcome


# --- next_attempt ------------------------------------------------------------------------------


@pytest.mark.parametrize("attempts_made", range(1, 8))
@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_each_retry_follows_the_schedule_within_ten_percent(attempts_made: int, jitter: float) -> None:
    planned = DELAYS_S[attempts_made - 1]

    waited = delay_s(next_attempt(attempts_made, NOW, jitter=jitter).at)

    assert planned * 0.9 <= waited <= planned * 1.1


@pytest.mark.parametrize(("jitter", "factor"), [(0.0, 0.9), (0.5, 1.0)])
def test_the_jitter_spans_minus_ten_percent_to_the_planned_delay(jitter: float, factor: float) -> None:
    assert delay_s(next_attempt(2, NOW, jitter=jitter).at) == pytest.approx(300.0 * factor)


@given(attempts_made=st.integers(1, 7), jitter=st.floats(0.0, 1.0, exclude_max=True))
def test_any_jitter_stays_within_ten_percent(attempts_made: int, jitter: float) -> None:
    planned = DELAYS_S[attempts_made - 1]

    assert planned * 0.9 <= delay_s(next_attempt(attempts_made, NOW, jitter=jitter).at) < planned * 1.1


def test_the_whole_schedule_takes_about_27_and_a_half_hours() -> None:
    assert sum(DELAYS_S) / 3600 == pytest.approx(27.6, abs=0.05)


@pytest.mark.parametrize("attempts_made", [8, 9, 50])
def test_the_delivery_is_exhausted_after_the_eighth_attempt(attempts_made: int) -> None:
    assert next_attempt(attempts_made, NOW, jitter=0.5).at is None
    assert next_attempt(attempts_made, NOW, jitter=0.5, retry_after=10.0).at is None


@pytest.mark.parametrize("attempts_made", [0, -1])
def test_a_retry_needs_an_attempt_first(attempts_made: int) -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        next_attempt(attempts_made, NOW, jitter=0.5)


@pytest.mark.parametrize(
    ("attempts_made", "retry_after", "waited"),
    [
        (1, 120.0, 120.0),  # longer than 5 s: honoured
        (1, 2.0, 5.0),  # shorter: the schedule wins
        (1, 0.0, 5.0),
        (2, 120.0, 300.0),  # shorter than 5 min: the schedule wins
        (3, DAY_S, DAY_S),
    ],
)
def test_retry_after_is_honoured_only_when_longer_than_the_schedule(
    attempts_made: int, retry_after: float, waited: float
) -> None:
    retry = next_attempt(attempts_made, NOW, jitter=0.5, retry_after=retry_after)

    assert delay_s(retry.at) == pytest.approx(waited)


# --- retry_after_s -----------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "seconds"), [("120", 120.0), (" 120 ", 120.0), ("0", 0.0), ("5", 5.0)])
def test_retry_after_in_seconds(header: str, seconds: float) -> None:
    assert retry_after_s(header, NOW) == seconds


def test_retry_after_as_an_http_date_is_the_time_until_then() -> None:
    header = format_datetime(NOW + timedelta(minutes=10), usegmt=True)

    assert retry_after_s(header, NOW) == 600.0


def test_retry_after_as_an_http_date_in_the_past_means_now() -> None:
    header = format_datetime(NOW - timedelta(minutes=10), usegmt=True)

    assert retry_after_s(header, NOW) == 0.0


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "soon",
        "1.5",
        "-5",
        "12 seconds",
        "Tomorrow, 25 Dec",
        pytest.param("\u00b2", id="superscript-two"),  # str.isdigit() holds, float() refuses
        pytest.param("\u00b9\u00b2\u2070", id="superscript-120"),
    ],
)
def test_an_unreadable_retry_after_is_ignored(header: str | None) -> None:
    assert retry_after_s(header, NOW) is None


@pytest.mark.parametrize(
    "header",
    ["86401", "999999999999999999999", format_datetime(NOW + timedelta(days=3), usegmt=True)],
)
def test_retry_after_is_capped_at_a_day(header: str) -> None:
    assert retry_after_s(header, NOW) == DAY_S


# --- should_disable ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failing_for", "disabled"),
    [
        (None, False),
        (timedelta(0), False),
        (timedelta(hours=1) - timedelta(microseconds=1), False),
        (timedelta(hours=1), True),
        (timedelta(days=3), True),
    ],
)
def test_an_endpoint_is_disabled_once_it_has_failed_for_the_limit(
    failing_for: timedelta | None, disabled: bool
) -> None:
    failing_since = None if failing_for is None else NOW - failing_for

    assert should_disable(failing_since, NOW, timedelta(hours=1)) is disabled


# --- secrets and signatures --------------------------------------------------------------------


def test_a_secret_is_whsec_and_the_base64_of_32_random_bytes() -> None:
    random_bytes = bytes(range(32))

    secret = format_secret(random_bytes)

    assert secret.startswith("whsec_")
    assert len(secret) == len("whsec_") + 44
    assert base64.b64decode(secret.removeprefix("whsec_")) == random_bytes


def test_a_secret_uses_only_the_first_32_bytes_given() -> None:
    assert format_secret(bytes(range(64))) == format_secret(bytes(range(32)))


@pytest.mark.parametrize("size", [0, 16, 31])
def test_a_secret_from_too_few_random_bytes_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="32 random bytes"):
        format_secret(bytes(size))


def test_a_secret_signs_as_standard_webhooks_expects() -> None:
    secret = format_secret(bytes(range(32)))
    content = signed_content("msg_1", int(NOW.timestamp()), '{"a":1}')

    expected = base64.b64encode(hmac.new(bytes(range(32)), content, hashlib.sha256).digest()).decode()

    assert content == f'msg_1.{int(NOW.timestamp())}.{{"a":1}}'.encode()
    assert Webhook(secret).sign("msg_1", NOW, '{"a":1}') == f"v1,{expected}"


# --- subscribed --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_types", "event_type", "expected"),
    [
        (["agent_eval.run.done", "agent_eval.suite_run.done"], "agent_eval.run.done", True),
        (["agent_eval.run.done"], "agent_eval.suite_run.done", False),
        (["agent_eval.run.done"], "agent_eval.run", False),
        ([], "agent_eval.run.done", False),
    ],
)
def test_an_endpoint_receives_only_the_event_types_it_lists(
    event_types: list[str], event_type: str, expected: bool
) -> None:
    assert subscribed(event_types, event_type) is expected
