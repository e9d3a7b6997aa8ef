"""How much one process holds, on the real services (modes of `bench.pipeline`): `capacity`, the
conversations one executor plays at once at a 1 s model latency, and its memory; `waiters`, the
blocked POSTs one gateway holds, its memory, and how fast a SIGTERM answers them all."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from bench.agent_kinds import make_case
from bench.pipeline_stack import Stack
from bench.stack import metric, peak_rss_mb, rss_mb, wait_ready


def trigger_without_waiting(base: str, key: str, case_id: str, count: int) -> None:
    async def main() -> None:
        headers = {"Authorization": f"Bearer {key}", "Prefer": "wait=0"}
        async with aiohttp.ClientSession(headers=headers) as session:
            semaphore = asyncio.Semaphore(50)

            async def one() -> None:
                async with (
                    semaphore,
                    session.post(f"{base}/agent-eval/cases/{case_id}/run", json={}) as response,
                ):
                    await response.read()

            await asyncio.gather(*(one() for _ in range(count)))

    asyncio.run(main())


def sample_until(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def capacity(args: argparse.Namespace, server_url: str, bootstrap: str, logs: Path) -> None:
    n = args.conversations
    env = {"AGENT_EVAL_SCRIPTED_LATENCY_S": "1.0", "AGENT_EVAL_EXECUTOR_CONCURRENCY": str(n)}
    stack = Stack(server_url, bootstrap, logs, env)
    try:
        stack.start(executors=1, scorers=1, billers=1)
        case_id = make_case(stack.base, stack.seeded.key, max_turns=60, lines=30)  # about a minute each
        started = time.monotonic()
        trigger_without_waiting(stack.base, stack.seeded.key, case_id, n)
        executor = stack.processes.started["executor-1"]
        active_url = f"http://127.0.0.1:{stack.health['executor-1']}/metrics"
        full = sample_until(lambda: metric(active_url, "agent_eval_conversations_active") >= n, 120)
        reached = time.monotonic() - started
        samples = []
        for _ in range(10):
            samples.append((metric(active_url, "agent_eval_conversations_active"), rss_mb(executor.pid)))
            time.sleep(1)
        turns = metric(active_url, "agent_eval_turns_persisted_total")
        peak = peak_rss_mb(executor.pid)
    finally:
        stack.close()
    print(f"capacity: {n} conversations in one executor, 1 s per model call")
    print(f"  all {n} playing  {'yes' if full else 'NO'} (after {reached:.1f} s)")
    print(f"  active (10 s)    min {min(a for a, _ in samples):.0f}, max {max(a for a, _ in samples):.0f}")
    print(f"  executor RSS     {max(r for _, r in samples):,.0f} MB while full; peak {peak:,.0f} MB")
    print(f"  turns persisted  {turns:,.0f} so far")


def blocked_posts(base: str, key: str, case_id: str, count: int, out: multiprocessing.Queue[str]) -> None:
    """In its own process: `count` blocking POSTs at once; report when each was answered."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (count + 1000, count + 1000))

    async def main() -> None:
        headers = {"Authorization": f"Bearer {key}", "Prefer": "wait=60"}
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as session:

            async def one() -> tuple[int, float]:
                async with session.post(f"{base}/agent-eval/cases/{case_id}/run", json={}) as response:
                    await response.read()
                    return response.status, time.time()

            answers = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        codes = [a[0] for a in answers if isinstance(a, tuple)]
        last = max((a[1] for a in answers if isinstance(a, tuple)), default=0.0)
        out.put(f"{codes.count(202)} {len(answers) - len(codes)} {last}")

    asyncio.run(main())


def waiters(args: argparse.Namespace, server_url: str, bootstrap: str, logs: Path) -> None:
    n = args.waiters
    limit = n + 1000
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (limit, max(limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    )
    stack = Stack(server_url, bootstrap, logs, {})
    try:
        stack.processes.start("gateway", "serve")
        wait_ready(f"{stack.base}/readyz")
        case_id = make_case(stack.base, stack.seeded.key, max_turns=10, lines=5)
        gateway = stack.processes.started["gateway"]
        queue: multiprocessing.Queue[str] = multiprocessing.Queue()
        client = multiprocessing.Process(
            target=blocked_posts, args=(stack.base, stack.seeded.key, case_id, n, queue)
        )
        started = time.monotonic()
        client.start()
        metrics = f"{stack.base}/metrics"
        full = sample_until(lambda: metric(metrics, "agent_eval_run_waiters") >= n, 240)
        reached = time.monotonic() - started
        blocked_rss = rss_mb(gateway.pid)
        peak = peak_rss_mb(gateway.pid)
        stopped_at = time.time()
        stack.processes.stop("gateway", timeout_s=60)
        answered, failed, last = queue.get(timeout=120).split()
        client.join(30)
    finally:
        stack.close()
    print(f"waiters: {n} blocked POSTs (Prefer: wait=60) on one gateway, nothing executing")
    print(f"  all {n} blocked   {'yes' if full else 'NO'} (after {reached:.1f} s)")
    print(f"  gateway RSS      {blocked_rss:,.0f} MB with all blocked; peak {peak:,.0f} MB")
    after = float(last) - stopped_at
    print(f"  on SIGTERM       {answered} answered 202, {failed} failed, the last {after:.2f} s later")
