"""The model client's retry rules, as the official OpenAI SDK has them: which answers are tried
again, the Retry-After a server asks for, and the backoff without one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumers.llm.retry_policy import MAX_RETRY_AFTER_S, backoff_s, retry_after_s, should_retry

NOW = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("milliseconds", "value", "expected"),
    [
        pytest.param("250", "7", 0.25, id="milliseconds-win-over-seconds"),
        pytest.param(None, "7", 7.0, id="seconds"),
        pytest.param(None, "1.5", 1.5, id="fractional-seconds"),
        pytest.param("soon", "3", 3.0, id="unreadable-milliseconds-fall-back-to-seconds"),
        pytest.param(None, "Mon, 04 May 2026 12:00:30 GMT", 30.0, id="an-http-date"),
        pytest.param(None, "Mon, 04 May 2026 11:59:00 GMT", -60.0, id="a-date-gone-by"),
        pytest.param(None, "whenever", None, id="unreadable"),
        pytest.param(None, None, None, id="none-asked"),
        pytest.param(None, "9" * 400, MAX_RETRY_AFTER_S + 1, id="a-number-past-float-range-is-too-long"),
    ],
)
def test_retry_after_reads_what_the_server_asked_for(
    milliseconds: str | None, value: str | None, expected: float | None
) -> None:
    assert retry_after_s(milliseconds, value, NOW) == expected


@pytest.mark.parametrize(
    ("status", "retry_after", "header", "expected"),
    [
        pytest.param(408, None, None, True, id="request-timeout"),
        pytest.param(409, None, None, True, id="conflict"),
        pytest.param(429, None, None, True, id="rate-limited"),
        pytest.param(500, None, None, True, id="server-error"),
        pytest.param(503, 120.0, None, True, id="retry-after-at-the-cap"),
        pytest.param(429, 121.0, None, False, id="retry-after-past-the-cap"),
        pytest.param(429, 121.0, "true", False, id="the-cap-wins-over-the-header"),
        pytest.param(400, None, None, False, id="bad-request"),
        pytest.param(401, None, None, False, id="unauthorized"),
        pytest.param(404, None, None, False, id="not-found"),
        pytest.param(400, None, "true", True, id="server-asks-for-a-retry"),
        pytest.param(500, None, "false", False, id="server-asks-for-none"),
    ],
)
def test_should_retry_follows_status_header_and_cap(
    status: int, retry_after: float | None, header: str | None, expected: bool
) -> None:
    assert should_retry(status, retry_after, header) is expected


@pytest.mark.parametrize(
    ("retries_taken", "expected"), [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0), (5000, 8.0)]
)
def test_backoff_doubles_from_half_a_second_up_to_eight(retries_taken: int, expected: float) -> None:
    assert backoff_s(retries_taken, None, jitter=0.0) == expected
    assert backoff_s(retries_taken, None, jitter=0.999) == pytest.approx(expected * 0.75, rel=1e-3)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(2.5, 2.5), (120.0, 120.0), (0.0, 0.5), (-3.0, 0.5), (121.0, 0.5), (float("nan"), 0.5)],
)
def test_a_retry_after_between_zero_and_two_minutes_replaces_the_backoff(
    retry_after: float, expected: float
) -> None:
    assert backoff_s(0, retry_after, jitter=0.0) == expected
