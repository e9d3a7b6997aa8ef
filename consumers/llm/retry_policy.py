"""When a model call is tried again and how long to wait first: the official OpenAI SDK's rules,
which OpenAI, Azure and the compatible servers expect.

A failed call is tried again on 408, 409, 429 and 5xx, on a timeout and on a broken connection,
up to the provider's `max_retries` times. The server can say otherwise with `x-should-retry:
true|false`, and a `Retry-After` (or OpenAI's `retry-after-ms`) longer than two minutes is not
waited for. Between tries: the server's Retry-After when it gives one of up to two minutes, else
0.5 s doubling per retry up to 8 s, less a random 0-25 %.
"""

from __future__ import annotations

import math
from datetime import datetime
from email.utils import parsedate_to_datetime

INITIAL_DELAY_S = 0.5
MAX_DELAY_S = 8.0
MAX_RETRY_AFTER_S = 120.0
RETRIED_STATUSES = frozenset({408, 409, 429})


def retry_after_s(milliseconds: str | None, value: str | None, now: datetime) -> float | None:
    """The wait a server asked for, in seconds: `retry-after-ms`, else `Retry-After` as seconds
    (a float is accepted) or as an HTTP date after `now`; None when it asked for none."""
    for text, divisor in ((milliseconds, 1000.0), (value, 1.0)):
        if text is None:
            continue
        try:
            seconds = float(text)
        except ValueError:
            continue
        if seconds == math.inf and text.strip().lower() not in ("inf", "+inf", "infinity", "+infinity"):
            return MAX_RETRY_AFTER_S + 1  # a number too large for a float: far too long to wait
        return seconds / divisor
    return _date_after(value, now)


def _date_after(value: str | None, now: datetime) -> float | None:
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return (when - now).total_seconds()


def should_retry(status: int, retry_after: float | None, should_retry_header: str | None) -> bool:
    """Whether an answer with HTTP `status` (not 2xx) is worth another try."""
    if retry_after is not None and math.isfinite(retry_after) and retry_after > MAX_RETRY_AFTER_S:
        return False
    if should_retry_header == "true":
        return True
    if should_retry_header == "false":
        return False
    return status in RETRIED_STATUSES or status >= 500


def backoff_s(retries_taken: int, retry_after: float | None, jitter: float) -> float:
    """The wait before the next try after `retries_taken` retries; `jitter` is in [0, 1)."""
    if retry_after is not None and math.isfinite(retry_after) and 0 < retry_after <= MAX_RETRY_AFTER_S:
        return retry_after
    delay = min(INITIAL_DELAY_S * 2.0 ** min(retries_taken, 1000), MAX_DELAY_S)
    return max(delay * (1 - 0.25 * jitter), 0.0)
