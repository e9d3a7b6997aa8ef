"""The maintenance sweeps that publish a run's request again (DESIGN.md §2, §3), and the queue's age.

A released run that stays pending, or a claimed run whose lease expired and whose re-dispatch
nobody acted on, gets a new request only when its last one was lost
(`service.domain.redispatch`): the relay recorded where each request went, and the executors'
consumer group's committed offsets say whether they have read past it. A request still waiting
in the topic behind busy executors is left alone, and the run counts as dispatched now, so it is
looked at again `dispatch_stale_s` later; under overload that is the difference between a queue
and a queue that feeds itself duplicates.

When the broker cannot say where the group is (down, slow: `OFFSETS_TIMEOUT_S`), nothing that
was published is re-dispatched and the sweep goes on: the relay could not publish new requests
anyway, and the runs are looked at again after `dispatch_stale_s`. Runs without a request, or
whose request was published before positions were recorded, are re-dispatched as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from schemas.events import Topic
from service.bus.interface import Bus
from service.bus.topics import topic_name
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.errors import BusError
from service.core.logging import get_logger
from service.core.metrics import QUEUE_OLDEST_PENDING_AGE, RUNS_REDISPATCHED
from service.core.settings import Settings
from service.db import dispatch
from service.db.postgres import Connection, Pool, connection, transaction
from service.db.runs import RunRow
from service.domain.redispatch import RequestFate, request_fate
from service.runs.endings import announce_end, fill_slots

log = get_logger("consumers.redispatch")

SWEEP_BATCH = 100
MAX_BATCHES = 50  # per sweep: 5,000 runs looked at, then the next sweep goes on
OFFSETS_TIMEOUT_S = 5.0  # how long a sweep waits for the broker to say where the executors are
REQUEST_GIVE_UP_S = 3600.0  # a request this old counts as lost whatever the offsets say
EXECUTOR_ROLE = "executor"  # the role whose group reads run requests (consumers.executor.worker)

Committed = dict[int, int] | None  # partition -> the group's committed offset; None: unreadable

for _reason in ("stale_pending", "lease_expired"):
    RUNS_REDISPATCHED.labels(_reason)  # exported as 0 from the start: "none" is not "not measured"


@dataclass(frozen=True)
class ExecutorOffsets:
    """Where the executors' consumer group has read the run-requests topic to."""

    bus: Bus
    group: str
    topic: str
    timeout_s: float = OFFSETS_TIMEOUT_S

    @classmethod
    def of(cls, bus: Bus, settings: Settings) -> ExecutorOffsets:
        prefix = settings.topic_prefix
        return cls(bus, f"{prefix}agent-eval.{EXECUTOR_ROLE}", topic_name(prefix, Topic.RUN_REQUESTS))

    async def read(self) -> Committed:
        """Committed offset by partition, or None (said once per sweep) when the broker cannot
        answer within `timeout_s`."""
        try:
            async with asyncio.timeout(self.timeout_s):
                offsets = await self.bus.committed(self.group, self.topic)
        except (BusError, TimeoutError) as exc:
            log.warning("executor_offsets_unreadable", group=self.group, error=str(exc) or type(exc).__name__)
            return None
        return {tp.partition: offset for tp, offset in offsets.items()}


async def _read(executors: ExecutorOffsets | None) -> Committed:
    return None if executors is None else await executors.read()


async def _lost(
    conn: Connection,
    runs: Sequence[RunRow],
    executors: ExecutorOffsets | None,
    committed: Committed,
    clock: Clock,
) -> list[RunRow]:
    """The runs whose last request was lost; without `executors` (no bus to ask), all of them."""
    if executors is None or not runs:
        return list(runs)
    last = await dispatch.list_last_requests(conn, [run.id for run in runs])
    now = clock.now()
    return [
        run
        for run in runs
        if request_fate(last.get(run.id), committed, now=now, give_up_after_s=REQUEST_GIVE_UP_S)
        is RequestFate.LOST
    ]


async def sweep_stale_pending(
    pool: Pool, older_than_s: float, executors: ExecutorOffsets | None, clock: Clock = SYSTEM_CLOCK
) -> int:
    """Re-dispatch released runs no executor claimed within `older_than_s` whose request was
    lost; the others wait their turn. Returns how many were re-dispatched."""
    async with connection(pool) as conn:
        if not await dispatch.has_stale_pending(conn, older_than_s):
            return 0
    committed = await _read(executors)
    redispatched: list[RunRow] = []
    for _ in range(MAX_BATCHES):
        async with transaction(pool) as conn:
            stale = await dispatch.claim_stale_pending(conn, older_than_s, SWEEP_BATCH)
            lost = await _lost(conn, stale, executors, committed, clock)
            await dispatch.redispatch(conn, lost)
            await dispatch.mark_dispatched(conn, _ids(stale) - _ids(lost))
        redispatched += lost
        if len(stale) < SWEEP_BATCH:
            break
    if redispatched:
        RUNS_REDISPATCHED.labels("stale_pending").inc(len(redispatched))
        log.warning(
            "stale_pending_redispatched",
            count=len(redispatched),
            run_ids=[str(r.id) for r in redispatched],
        )
    return len(redispatched)


def _ids(runs: Sequence[RunRow]) -> set[UUID]:
    return {run.id for run in runs}


def _redispatched_since_expiry(run: RunRow) -> bool:
    """A request was written after the lease expired (a sweep's, or the executor's hand-back)."""
    return (
        run.dispatched_at is not None
        and run.lease_expires_at is not None
        and run.dispatched_at >= run.lease_expires_at
    )


async def sweep_expired_leases(
    pool: Pool, settings: Settings, executors: ExecutorOffsets | None, clock: Clock = SYSTEM_CLOCK
) -> dict[str, int]:
    """Runs whose executor vanished: re-dispatch them to be resumed (again only if that request
    was lost), or, once their claims are used up (hand-backs do not count), end them failed with
    `EXECUTOR_LOST`."""
    cap = settings.max_attempts
    async with connection(pool) as conn:
        if not await dispatch.has_expired_leases(conn, settings.dispatch_stale_s, cap):
            return {"lost": 0, "redispatched": 0}
    committed = await _read(executors)
    async with transaction(pool) as conn:
        expired = await dispatch.claim_expired_leases(conn, settings.dispatch_stale_s, SWEEP_BATCH, cap)
        lost = [r for r in expired if r.attempt - r.handed_back >= cap]
        again = [r for r in expired if r.id not in _ids(lost) and _redispatched_since_expiry(r)]
        gone = _ids(await _lost(conn, again, executors, committed, clock))
        waiting = _ids(again) - gone
        retry = [r for r in expired if r.id not in _ids(lost) and r.id not in waiting]
        # Ended in company order: their commit counts them out of flight company by company
        # (migration 0018), in the order the executors' ending batches take those rows.
        in_order = sorted(lost, key=lambda r: (r.company_id, r.id))
        ended = [run for run in [await _end_lost(conn, r, cap) for r in in_order] if run is not None]
        await dispatch.redispatch(conn, retry)
        await dispatch.mark_dispatched(conn, waiting)
    for company_id in {run.company_id for run in ended}:
        await fill_slots(pool, company_id, settings.max_inflight_runs_per_company, after_end=True)
    if retry:
        RUNS_REDISPATCHED.labels("lease_expired").inc(len(retry))
    if lost or retry:
        log.warning(
            "expired_leases_swept", lost=[str(r.id) for r in lost], redispatched=[str(r.id) for r in retry]
        )
    return {"lost": len(lost), "redispatched": len(retry)}


async def _end_lost(conn: Connection, run: RunRow, max_attempts: int) -> RunRow | None:
    over = await dispatch.end_lost_run(
        conn, run.id, f"no executor finished the run in {max_attempts} attempts"
    )
    if over is not None:
        await announce_end(conn, over)
    return over


async def measure_queue_age(pool: Pool) -> float:
    """Set `agent_eval_queue_oldest_pending_age_seconds`: how long the oldest released run has
    waited for an executor (0 when none waits)."""
    async with connection(pool) as conn:
        age = await dispatch.oldest_pending_age_s(conn)
    QUEUE_OLDEST_PENDING_AGE.set(age)
    return age
