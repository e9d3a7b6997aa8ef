"""Maintenance: periodic jobs run by the active relay only (DESIGN.md §2).

Every 5 s: measure stuck runs (`agent_eval_runs_stuck`). Hourly: purge sent outbox rows past
`AGENT_EVAL_EVENT_RETENTION_HOURS`, and rate-limit windows older than five minutes. Later
capabilities add their sweeps to `maintenance_jobs`.
A failing job is logged and counted, and retried at its next interval; it never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.db import outbox, rate_limits, runs
from service.db.core import Pool, connection
from service.logging import get_logger
from service.metrics import MAINTENANCE_RUNS, OUTBOX_PURGED, RUNS_STUCK
from service.settings import Settings

log = get_logger("service.maintenance")

PURGE_BATCH = 10_000
RATE_WINDOW_KEPT = timedelta(minutes=5)  # windows are 60 s; older ones are dead weight


@dataclass(frozen=True)
class Job:
    name: str
    interval_s: float
    run: Callable[[], Awaitable[object]]


def maintenance_jobs(pool: Pool, settings: Settings) -> list[Job]:
    """The jobs the active relay runs, with their intervals."""

    async def measure_stuck_runs() -> dict[str, int]:
        async with connection(pool) as conn:
            counts = await runs.count_stuck_runs(conn)
        for reason, count in counts.items():
            RUNS_STUCK.labels(reason).set(count)
        return counts

    async def purge_outbox() -> int:
        retention_s = settings.event_retention_hours * 3600
        total = 0
        while True:
            async with connection(pool) as conn:
                deleted = await outbox.purge_sent(conn, retention_s, PURGE_BATCH)
            total += deleted
            if deleted < PURGE_BATCH:
                break
        OUTBOX_PURGED.inc(total)
        return total

    async def purge_rate_limit_windows() -> int:
        async with connection(pool) as conn:
            return await rate_limits.purge_windows(conn, datetime.now(UTC) - RATE_WINDOW_KEPT)

    return [
        Job("runs_stuck", settings.maintenance_interval_s, measure_stuck_runs),
        Job("outbox_purge", settings.maintenance_hourly_s, purge_outbox),
        Job("rate_limit_purge", settings.maintenance_hourly_s, purge_rate_limit_windows),
    ]


async def run_scheduler(jobs: Sequence[Job], stop: asyncio.Event) -> None:
    """Run each job now and then every `interval_s`, until `stop` is set."""
    next_due = dict.fromkeys((job.name for job in jobs), 0.0)
    while not stop.is_set():
        for job in jobs:
            if time.monotonic() >= next_due[job.name]:
                await run_job(job)
                next_due[job.name] = time.monotonic() + job.interval_s
        wait = max(0.0, min(next_due.values(), default=1.0) - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)


async def run_job(job: Job) -> None:
    """Run one job, logging and counting its outcome instead of raising."""
    started = time.monotonic()
    try:
        result = await job.run()
    except Exception:
        MAINTENANCE_RUNS.labels(job.name, "error").inc()
        log.exception("maintenance_job_failed", job=job.name)
        return
    MAINTENANCE_RUNS.labels(job.name, "ok").inc()
    log.debug(
        "maintenance_job_done", job=job.name, result=result, seconds=round(time.monotonic() - started, 3)
    )
