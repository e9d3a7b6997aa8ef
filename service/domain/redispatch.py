"""Whether a run request no executor acted on is still on its way or was lost (DESIGN.md §3).

A released run that stays pending is re-dispatched only when its last request was lost: never
written, or read by the executors' consumer group (the group's committed offset for the
request's partition is past it) without the run being claimed. A request still in the outbox,
or in the topic at or beyond the committed offset, is waiting behind busy executors; publishing
another would only add work when they are saturated. When the group's offsets cannot be read,
the answer is unknown, and the caller asks again later rather than re-dispatch everything.

Two events fool the offsets (a topic deleted and created again, records expired by retention
before any executor read them), so a request older than `give_up_after_s` counts as lost
whatever they say: at worst one duplicate per run per `give_up_after_s`, never a run stuck for
good. Pure: times and offsets are parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class RequestFate(StrEnum):
    WAITING = "waiting"  # in the outbox, or in the topic ahead of the executors
    LOST = "lost"  # never written, or read without a claim: write another
    UNKNOWN = "unknown"  # published, but where the executors are could not be read


@dataclass(frozen=True)
class LastRequest:
    """A run's most recent run request: when it was written, and where the bus put it (partition
    and offset; None while unsent, or if published before positions were recorded)."""

    written_at: datetime
    sent: bool
    partition: int | None
    offset: int | None


def request_fate(
    request: LastRequest | None,
    committed: Mapping[int, int] | None,
    *,
    now: datetime,
    give_up_after_s: float,
) -> RequestFate:
    """What became of a pending run's last request. `committed` maps each partition of the
    run-requests topic to the executors' group's committed offset (the next one it reads;
    partitions it never committed are absent), or is None when it could not be read."""
    if request is None or (now - request.written_at).total_seconds() >= give_up_after_s:
        return RequestFate.LOST
    if not request.sent:
        return RequestFate.WAITING  # the relay has yet to publish it
    if request.partition is None or request.offset is None:
        return RequestFate.LOST  # published with no position recorded: only the time rule is left
    if committed is None:
        return RequestFate.UNKNOWN
    read_to = committed.get(request.partition)
    if read_to is None or request.offset >= read_to:
        return RequestFate.WAITING
    return RequestFate.LOST
