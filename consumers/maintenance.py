"""Maintenance: periodic jobs run by the active relay only (DESIGN.md §2).

Every 5 s: measure stuck runs (`agent_eval_runs_stuck`) and the queue's age
(`agent_eval_queue_oldest_pending_age_seconds`); release held runs that now fit under their
company's cap (and suite parallelism) and dispatch them; re-dispatch runs whose lease expired
(or fail them `EXECUTOR_LOST` past the attempt cap), and released runs still pending 30 s after
their last dispatch whose request was lost, not merely waiting in the topic
(`consumers.redispatch`); nudge runs terminal but not done for two minutes by re-emitting
their last stage event (each run at most every two minutes). Hourly: purge sent outbox rows past
`AGENT_EVAL_EVENT_RETENTION_HOURS`, idempotency keys past `AGENT_EVAL_IDEMPOTENCY_TTL_HOURS`,
rate-limit windows older than five minutes, and finished webhook deliveries past
`AGENT_EVAL_WEBHOOK_RETENTION_DAYS`.
A failing job is logged and counted, and retried at its next interval; it never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from consumers.redispatch import (
    ExecutorOffsets,
    measure_queue_age,
    sweep_expired_leases,
    sweep_stale_pending,
)
from service.bus.interface import Bus
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.logging import get_logger
from service.core.metrics import MAINTENANCE_RUNS, OUTBOX_PURGED, RUNS_STUCK
from service.core.settings import Settings
from service.db import deliveries, dispatch, idempotency, outbox, publishing, rate_limits, runs
from service.db.postgres import Connection, Pool, connection, transaction
from service.domain.lifecycle import FINALISE_AFTER_S, last_stage_event

log = get_logger("consumers.maintenance")

PURGE_BATCH = 10_000
SWEEP_BATCH = 100
RATE_WINDOW_KEPT = timedelta(minutes=5)  # windows are 60 s; older ones are dead weight


@dataclass(frozen=True)
class Job:
    name: str
    interval_s: float
    run: Callable[[], Awaitable[object]]


def maintenance_jobs(
    pool: Pool, settings: Settings, clock: Clock = SYSTEM_CLOCK, *, bus: Bus | None = None
) -> list[Job]:
    """The jobs the active relay runs, with their intervals. With `bus`, the re-dispatch sweeps
    ask it where the executors are (`consumers.redispatch`); without, every request of a run
    still pending after `dispatch_stale_s` counts as lost."""
    every_5s, hourly = settings.maintenance_interval_s, settings.maintenance_hourly_s
    executors = None if bus is None else ExecutorOffsets.of(bus, settings)
    stale_s = settings.dispatch_stale_s
    return [
        Job("runs_stuck", every_5s, partial(measure_stuck_runs, pool)),
        Job("queue_age", every_5s, partial(measure_queue_age, pool)),
        Job(
            "release_held", every_5s, partial(release_held_runs, pool, settings.max_inflight_runs_per_company)
        ),
        Job("expired_leases", every_5s, partial(sweep_expired_leases, pool, settings, executors, clock)),
        Job("stale_pending", every_5s, partial(sweep_stale_pending, pool, stale_s, executors, clock)),
        Job("finalisation_sweep", every_5s, partial(sweep_unfinalised, pool)),
        Job("outbox_purge", hourly, partial(purge_outbox, pool, settings.event_retention_hours * 3600)),
        Job(
            "idempotency_purge",
            hourly,
            partial(purge_idempotency_keys, pool, settings.idempotency_ttl_hours, clock),
        ),
        Job("rate_limit_purge", hourly, partial(purge_rate_limit_windows, pool, clock)),
        Job(
            "webhook_delivery_purge",
            hourly,
            partial(purge_webhook_deliveries, pool, settings.webhook_retention_days, clock),
        ),
    ]


async def measure_stuck_runs(pool: Pool) -> dict[str, int]:
    async with connection(pool) as conn:
        counts = await runs.count_stuck_runs(conn)
    for reason, count in counts.items():
        RUNS_STUCK.labels(reason).set(count)
    return counts


async def release_held_runs(pool: Pool, inflight_cap: int) -> int:
    """Release, company by company, the held runs that fit now (a raised cap, a missed release)."""
    async with connection(pool) as conn:
        companies = await dispatch.companies_with_held_runs(conn, SWEEP_BATCH)
    released = 0
    for company_id in companies:
        async with connection(pool) as conn:
            released += len(await dispatch.release_held(conn, company_id, inflight_cap))
    return released


async def sweep_unfinalised(pool: Pool) -> int:
    """Re-emit the last stage event of runs terminal but not done for two minutes."""
    async with transaction(pool) as conn:
        stuck = await runs.claim_unfinalised(conn, FINALISE_AFTER_S, SWEEP_BATCH)
        for run in stuck:
            event = last_stage_event(run.status, run.scored_at is not None)
            if event is not None:
                await outbox.append_event(conn, run.id, event, run.summary())
            await runs.mark_swept(conn, run.id)
    if stuck:
        log.warning("runs_finalisation_nudged", count=len(stuck), run_ids=[str(r.id) for r in stuck])
    return len(stuck)


async def _purge_in_batches(pool: Pool, purge: Callable[[Connection], Awaitable[int]]) -> int:
    """Run a batched delete until a batch comes back short (each batch its own short statement,
    so no long lock or transaction); returns how many rows went."""
    total = 0
    while True:
        async with connection(pool) as conn:
            deleted = await purge(conn)
        total += deleted
        if deleted < PURGE_BATCH:
            return total


async def purge_outbox(pool: Pool, retention_s: float) -> int:
    total = await _purge_in_batches(pool, lambda conn: publishing.purge_sent(conn, retention_s, PURGE_BATCH))
    OUTBOX_PURGED.inc(total)
    return total


async def purge_idempotency_keys(pool: Pool, ttl_hours: float, clock: Clock = SYSTEM_CLOCK) -> int:
    cutoff = clock.now() - timedelta(hours=ttl_hours)
    return await _purge_in_batches(pool, lambda conn: idempotency.purge_keys(conn, cutoff, PURGE_BATCH))


async def purge_rate_limit_windows(pool: Pool, clock: Clock = SYSTEM_CLOCK) -> int:
    async with connection(pool) as conn:
        return await rate_limits.purge_windows(conn, clock.now() - RATE_WINDOW_KEPT)


async def purge_webhook_deliveries(pool: Pool, retention_days: float, clock: Clock = SYSTEM_CLOCK) -> int:
    """Finished deliveries (and their attempts) older than the retention; pending ones stay."""
    before = clock.now() - timedelta(days=retention_days)
    return await _purge_in_batches(pool, lambda conn: deliveries.purge_finished(conn, before, PURGE_BATCH))


async def run_scheduler(jobs: Sequence[Job], stop: asyncio.Event, clock: Clock = SYSTEM_CLOCK) -> None:
    """Run each job now and then every `interval_s`, until `stop` is set."""
    next_due = dict.fromkeys((job.name for job in jobs), 0.0)
    while not stop.is_set():
        for job in jobs:
            if clock.monotonic() >= next_due[job.name]:
                await run_job(job, clock)
                next_due[job.name] = clock.monotonic() + job.interval_s
        wait = max(0.0, min(next_due.values(), default=1.0) - clock.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)


async def run_job(job: Job, clock: Clock = SYSTEM_CLOCK) -> None:
    """Run one job, logging and counting its outcome instead of raising."""
    started = clock.monotonic()
    try:
        result = await job.run()
    except Exception:
        MAINTENANCE_RUNS.labels(job.name, "error").inc()
        log.exception("maintenance_job_failed", job=job.name)
        return
    MAINTENANCE_RUNS.labels(job.name, "ok").inc()
    log.debug(
        "maintenance_job_done", job=job.name, result=result, seconds=round(clock.monotonic() - started, 3)
    )
