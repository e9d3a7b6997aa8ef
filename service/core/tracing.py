"""W3C trace context: one `traceparent` per request, carried onto the events it writes."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_current_trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)


def parse_trace_id(traceparent: str | None) -> str | None:
    """The trace id of a valid `traceparent` header, else None."""
    if not traceparent:
        return None
    match = _TRACEPARENT.fullmatch(traceparent.strip().lower())
    # W3C: an all-zero trace id or parent id makes the whole header invalid.
    if match is None or match.group(1) == "0" * 32 or match.group(2) == "0" * 16:
        return None
    return match.group(1)


def start_trace(traceparent: str | None = None) -> str:
    """Continue the caller's trace (or start one) for the current task; returns the trace id."""
    trace_id = parse_trace_id(traceparent) or secrets.token_hex(16)
    _current_trace_id.set(trace_id)
    return trace_id


def child_traceparent() -> str:
    """A `traceparent` for something this task emits: the current trace, a fresh span."""
    trace_id = _current_trace_id.get() or secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"
