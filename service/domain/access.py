"""Access decisions: is a key usable now, and where a request falls in its rate-limit window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

WINDOW = timedelta(seconds=60)

KeyStatus = Literal["ok", "unknown", "revoked", "expired"]


def key_status(
    exists: bool, revoked_at: datetime | None, expires_at: datetime | None, now: datetime
) -> KeyStatus:
    """Revocation wins over expiry; a key is expired from its `expires_at` on."""
    if not exists:
        return "unknown"
    if revoked_at is not None and revoked_at <= now:
        return "revoked"
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "ok"


@dataclass(frozen=True)
class Window:
    start: datetime
    reset_epoch_s: int  # window end, Unix seconds (X-RateLimit-Reset)


def window_of(now: datetime) -> Window:
    """The fixed 60-second window `now` falls in."""
    epoch = int(now.timestamp())
    start = epoch - epoch % int(WINDOW.total_seconds())
    return Window(datetime.fromtimestamp(start, UTC), start + int(WINDOW.total_seconds()))


@dataclass(frozen=True)
class LimitDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch_s),
        }


def decide(count: int, limit: int, window: Window, now: datetime) -> LimitDecision:
    """`count` is this request's number in the window, itself included."""
    retry_after = max(1, window.reset_epoch_s - int(now.timestamp()))
    return LimitDecision(count <= limit, limit, max(0, limit - count), window.reset_epoch_s, retry_after)
