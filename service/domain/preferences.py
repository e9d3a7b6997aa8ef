"""`Prefer: wait=N` (RFC 7240) on blocking endpoints: how long to hold the request open."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_WAIT_S = 60


@dataclass(frozen=True)
class Wait:
    seconds: float
    asked: bool  # the client sent `wait`: echo the applied value in Preference-Applied

    def applied(self) -> str:
        return f"wait={int(self.seconds)}"


def requested_wait(prefer: str | None, default_s: float) -> Wait:
    """The wait to apply: the client's `wait=N` clamped to 0-60 s, else `default_s`. Unreadable
    values are ignored, as RFC 7240 asks of preferences a server does not understand."""
    for token in (prefer or "").replace(";", ",").split(","):
        name, _, value = token.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        try:
            seconds = float(value.strip().strip('"'))
        except ValueError:
            continue
        if math.isnan(seconds):
            continue
        return Wait(float(int(min(max(seconds, 0.0), MAX_WAIT_S))), asked=True)
    return Wait(default_s, asked=False)
