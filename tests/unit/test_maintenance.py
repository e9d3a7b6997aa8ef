"""The maintenance scheduler with in-memory jobs: first run at once, failures isolated, prompt stop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY

from consumers.maintenance import Job, run_job, run_scheduler

TIMEOUT_S = 5.0
NEVER_AGAIN_S = 3600.0


def _unique(name: str) -> str:
    """Job names are metric labels in a process-wide registry: keep each test's counts apart."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _runs(job: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("agent_eval_maintenance_runs_total", {"job": job, "outcome": outcome})
    return value or 0.0


def _recording(name: str, calls: list[str], *, done: asyncio.Event | None = None, after: int = 1) -> Job:
    """A job that appends its name to `calls` and sets `done` once it has run `after` times."""

    async def run() -> str:
        calls.append(name)
        if done is not None and calls.count(name) >= after:
            done.set()
        return name

    return Job(name, NEVER_AGAIN_S, run)


def _failing(name: str, interval_s: float, calls: list[str], *, done: asyncio.Event, after: int) -> Job:
    async def run() -> None:
        calls.append(name)
        if calls.count(name) >= after:
            done.set()
        raise RuntimeError("sweep failed")

    return Job(name, interval_s, run)


async def _run_until(jobs: list[Job], condition: Callable[[], Awaitable[object]]) -> None:
    """Run the scheduler until `condition` completes, then stop it and wait for it to return."""
    stop = asyncio.Event()
    scheduler = asyncio.create_task(run_scheduler(jobs, stop))
    try:
        await asyncio.wait_for(condition(), TIMEOUT_S)
    finally:
        stop.set()
        await asyncio.wait_for(scheduler, TIMEOUT_S)


async def test_every_job_runs_once_as_soon_as_the_scheduler_starts() -> None:
    calls: list[str] = []
    last = asyncio.Event()
    jobs = [_recording("a", calls), _recording("b", calls), _recording("c", calls, done=last)]

    await _run_until(jobs, last.wait)

    assert calls == ["a", "b", "c"]


async def test_a_failing_job_is_counted_and_does_not_stop_the_others() -> None:
    broken, healthy = _unique("broken"), _unique("healthy")
    calls: list[str] = []
    failed, succeeded = asyncio.Event(), asyncio.Event()
    jobs = [
        _failing(broken, NEVER_AGAIN_S, calls, done=failed, after=1),
        _recording(healthy, calls, done=succeeded),
    ]

    await _run_until(jobs, succeeded.wait)

    assert failed.is_set()
    assert calls == [broken, healthy]
    assert _runs(broken, "error") == 1
    assert _runs(broken, "ok") == 0
    assert _runs(healthy, "ok") == 1


async def test_a_failing_job_is_retried_at_its_next_interval() -> None:
    flaky = _unique("flaky")
    calls: list[str] = []
    third_attempt = asyncio.Event()

    await _run_until([_failing(flaky, 0.001, calls, done=third_attempt, after=3)], third_attempt.wait)

    assert calls.count(flaky) >= 3
    assert _runs(flaky, "error") == calls.count(flaky)


async def test_a_fast_job_keeps_running_while_a_slow_one_waits_for_its_interval() -> None:
    calls: list[str] = []
    fast_ran_thrice = asyncio.Event()
    fast = _recording("fast", calls, done=fast_ran_thrice, after=3)
    jobs = [Job("fast", 0.001, fast.run), _recording("slow", calls)]

    await _run_until(jobs, fast_ran_thrice.wait)

    assert calls.count("slow") == 1
    assert calls.count("fast") >= 3


async def test_the_scheduler_returns_promptly_once_stopped() -> None:
    calls: list[str] = []
    ran = asyncio.Event()
    stop = asyncio.Event()
    scheduler = asyncio.create_task(run_scheduler([_recording("hourly", calls, done=ran)], stop))
    await asyncio.wait_for(ran.wait(), TIMEOUT_S)

    stop.set()

    # The next run is an hour away: only the stop event can end the wait this quickly.
    await asyncio.wait_for(scheduler, 1.0)
    assert calls == ["hourly"]


async def test_a_scheduler_stopped_before_it_starts_runs_nothing() -> None:
    calls: list[str] = []
    stop = asyncio.Event()
    stop.set()

    await asyncio.wait_for(run_scheduler([_recording("a", calls)], stop), TIMEOUT_S)

    assert calls == []


async def test_running_a_job_counts_success() -> None:
    name = _unique("once")
    calls: list[str] = []

    await run_job(_recording(name, calls))

    assert calls == [name]
    assert _runs(name, "ok") == 1
    assert _runs(name, "error") == 0


async def test_running_a_failing_job_does_not_raise() -> None:
    name = _unique("boom")
    calls: list[str] = []

    await run_job(_failing(name, 1.0, calls, done=asyncio.Event(), after=1))

    assert calls == [name]
    assert _runs(name, "error") == 1
