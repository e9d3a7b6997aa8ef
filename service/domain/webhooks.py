"""Webhook decisions (DESIGN.md §8): which endpoints an event goes to, how an attempt's outcome
is read, when the next attempt is due, when an endpoint is disabled, and what secrets look like.

Standard Webhooks v1 with Svix's schedule: an attempt immediately, then after 5 s, 5 min, 30 min,
2 h, 5 h, 10 h and 10 h (8 attempts over about 27.6 h), each delay with ±10 % jitter. Any 2xx is
delivered; a 3xx is a failure (redirects are never followed); `410 Gone` disables the endpoint;
`Retry-After` on 429 and 503 is honoured (the next attempt is never earlier than it asks). An
endpoint failing without a success for `disable_after` is disabled.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

SECRET_PREFIX = "whsec_"  # noqa: S105 — the prefix, not a secret
SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 random bytes
SCHEDULE_S: tuple[float, ...] = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
JITTER = 0.1  # each delay varies by up to ±10 %
MAX_RETRY_AFTER_S = 86_400.0  # a receiver cannot push an attempt beyond a day
DEFAULT_EVENT_TYPES: tuple[str, ...] = ("agent_eval.run.done", "agent_eval.suite_run.done")
PING_EVENT_TYPE = "agent_eval.ping"


class Outcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # retried on schedule
    THROTTLED = "throttled"  # retried on schedule, never before Retry-After
    GONE = "gone"  # 410: the endpoint is disabled, nothing more is sent


def format_secret(random_bytes: bytes) -> str:
    """A signing secret as shown to users: `whsec_` + base64 of `SECRET_BYTES` random bytes."""
    if len(random_bytes) < SECRET_BYTES:
        raise ValueError(f"need {SECRET_BYTES} random bytes, got {len(random_bytes)}")
    return SECRET_PREFIX + base64.b64encode(random_bytes[:SECRET_BYTES]).decode()


def subscribed(event_types: Sequence[str], event_type: str) -> bool:
    """True when an endpoint with this filter receives events of `event_type`."""
    return event_type in event_types


def outcome_of(status_code: int | None) -> Outcome:
    """How an attempt went: None is a connection failure or timeout (retried)."""
    if status_code is None:
        return Outcome.FAILED
    if 200 <= status_code < 300:
        return Outcome.DELIVERED
    if status_code == 410:
        return Outcome.GONE
    if status_code in (429, 503):
        return Outcome.THROTTLED
    return Outcome.FAILED


def retry_after_s(header: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delta-seconds or an HTTP-date), capped at a
    day; None when absent or unreadable."""
    if header is None or not header.strip():
        return None
    value = header.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_S)


@dataclass(frozen=True)
class Retry:
    """When the next attempt is due; None when the schedule is used up (the delivery is exhausted)."""

    at: datetime | None


def next_attempt(
    attempts_made: int, now: datetime, *, jitter: float, retry_after: float | None = None
) -> Retry:
    """After the `attempts_made`-th attempt of the schedule failed at `now`: when to try again.
    `jitter` is a number in [0, 1) drawn by the caller (0.5 means no shift)."""
    if attempts_made < 1:
        raise ValueError("at least one attempt was made")
    if attempts_made >= len(SCHEDULE_S):
        return Retry(None)
    delay = SCHEDULE_S[attempts_made] * (1 + JITTER * (2 * jitter - 1))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return Retry(now + timedelta(seconds=delay))


def should_disable(failing_since: datetime | None, now: datetime, disable_after: timedelta) -> bool:
    """True when the endpoint has failed without a success for `disable_after`."""
    return failing_since is not None and now - failing_since >= disable_after


def signed_content(message_id: str, timestamp: int, body: str) -> bytes:
    """What Standard Webhooks signs: `{id}.{timestamp}.{body}`."""
    return f"{message_id}.{timestamp}.{body}".encode()
