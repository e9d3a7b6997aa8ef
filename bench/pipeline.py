"""The run pipeline under load, on the real services: gateway, relay, executors, scorers and
billers as separate `agent-eval` processes on Kafka and PostgreSQL (started by
`scripts/services up`), runs driven through the HTTP API with the `scripted` model.

    source .services/env && .venv/bin/python -m bench.pipeline throughput [--runs 1000] [--executors 1]
    source .services/env && .venv/bin/python -m bench.pipeline capacity [--conversations 1000]
    source .services/env && .venv/bin/python -m bench.pipeline waiters [--waiters 5000]

`throughput`: M ten-turn runs (five persona lines, five agent replies, max_turns 10), each
triggered with a blocking POST, `--clients` at a time; prints runs/s, turns/s, trigger→done
p50/p99, the pipeline overhead (trigger→done minus the simulated model time) and each process's
peak RSS. `capacity`: one executor holding `--conversations` conversations at once with a 1 s
model latency; prints its RSS. `waiters`: `--waiters` blocked POSTs on one gateway (no executor,
so nothing finishes); prints the gateway's RSS and how fast a SIGTERM answers them all. Not a
test: nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import aiohttp
import asyncpg

from bench.stack import (
    Processes,
    Seeded,
    create_case,
    drop,
    machine_cpu,
    metric,
    peak_rss_mb,
    percentile,
    rss_mb,
    seed,
    wait_ready,
)
from service.local.pgserver import free_port


def make_case(base: str, key: str, *, max_turns: int, lines: int) -> str:
    agent = {
        "system_prompt": "You answer questions briefly.",
        "model": "scripted",
        "agent_speaks_first": False,
        "rules": [{"when": "question", "say": "Here is a short answer to your question."}],
    }
    script = [f"Question number {i}, please answer it." for i in range(1, lines + 1)]
    persona = {"identity_prompt": "You ask questions.", "model": "scripted", "script": script}
    case = {
        "scenario": "The caller asks five questions.",
        "max_turns": max_turns,
        "success_criteria": [
            {"type": "must_say", "pattern": "short answer"},
            {"type": "must_not_say", "pattern": "I can't help"},
        ],
    }
    return create_case(base, key, agent=agent, persona=persona, case=case)


class Stack:
    """The services of one benchmark: a fresh database, topics under a fresh prefix, processes."""

    def __init__(self, server_url: str, bootstrap: str, logs: Path, extra_env: dict[str, str]) -> None:
        self.server_url = server_url
        self.seeded: Seeded = asyncio.run(seed(server_url, credits_cents=100_000_000))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.health: dict[str, int] = {}
        env = {
            "AGENT_EVAL_DATABASE_URL": self.seeded.database_url,
            "AGENT_EVAL_KAFKA_BOOTSTRAP": bootstrap,
            "AGENT_EVAL_TOPIC_PREFIX": f"bench{uuid.uuid4().hex[:6]}.",
            "AGENT_EVAL_PORT": str(self.port),
            "AGENT_EVAL_LOG_FORMAT": "json",
            "AGENT_EVAL_MAX_INFLIGHT_RUNS_PER_COMPANY": "100000",
            **extra_env,
        }
        self.processes = Processes(env, logs)
        self.processes.run("kafka", "init")

    def start_role(self, name: str, *argv: str) -> None:
        port = free_port()
        self.health[name] = port
        self.processes.start(name, *argv, env={"AGENT_EVAL_HEALTH_PORT": str(port)})

    def start(self, *, executors: int, scorers: int, billers: int) -> None:
        self.processes.start("gateway", "serve")
        self.start_role("relay", "relay")
        for role, count in (("executor", executors), ("scorer", scorers), ("biller", billers)):
            for i in range(count):
                self.start_role(f"{role}-{i + 1}", "consume", role)
        wait_ready(f"{self.base}/readyz")
        for port in self.health.values():
            wait_ready(f"http://127.0.0.1:{port}/readyz")

    def close(self) -> None:
        self.processes.stop_all()
        asyncio.run(drop(self.server_url, self.seeded.database))


async def drive(base: str, key: str, case_id: str, runs: int, clients: int) -> list[tuple[float, str]]:
    """Trigger `runs` runs with blocking POSTs, `clients` at a time; (trigger→done seconds, status)."""
    results: list[tuple[float, str]] = []
    headers = {"Authorization": f"Bearer {key}", "Prefer": "wait=60"}
    left = iter(range(runs))
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(
        headers=headers, timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
    ) as s:

        async def client() -> None:
            for _ in left:
                started = time.monotonic()
                async with s.post(f"{base}/agent-eval/cases/{case_id}/run", json={}) as response:
                    run = await response.json()
                while run.get("queue_status") != "done":
                    async with s.get(f"{base}/agent-eval/runs/{run['id']}") as response:
                        run = await response.json()
                results.append((time.monotonic() - started, str(run["status"])))

        await asyncio.gather(*(client() for _ in range(clients)))
    return results


def throughput(args: argparse.Namespace, server_url: str, bootstrap: str, logs: Path) -> None:
    latency = args.latency
    stack = Stack(server_url, bootstrap, logs, {"AGENT_EVAL_SCRIPTED_LATENCY_S": str(latency)})
    try:
        stack.start(executors=args.executors, scorers=args.scorers, billers=args.billers)
        case_id = make_case(stack.base, stack.seeded.key, max_turns=10, lines=5)
        asyncio.run(drive(stack.base, stack.seeded.key, case_id, min(50, args.runs), args.clients))  # warm-up
        cpu_before = {**stack.processes.cpu_seconds(), **machine_cpu()}
        started = time.monotonic()
        results = asyncio.run(drive(stack.base, stack.seeded.key, case_id, args.runs, args.clients))
        wall = time.monotonic() - started
        cpu_after = {**stack.processes.cpu_seconds(), **machine_cpu()}
        cpu = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_after.items()}
        peaks = stack.processes.peak_rss_mb()
        stages = asyncio.run(stage_latencies(stack.seeded.database_url))
    finally:
        stack.close()
    seconds = [r[0] for r in results]
    model_s = 10 * latency
    statuses = {status: sum(1 for _, s in results if s == status) for _, status in results}
    print(
        f"pipeline: {args.runs} ten-turn scripted runs, {latency:g} s per model call, {args.clients} clients"
    )
    print(
        f"  processes        gateway, relay, {args.executors} executor(s), {args.scorers} scorer(s), "
        f"{args.billers} biller(s)"
    )
    print(f"  statuses         {statuses}")
    print(f"  runs/s           {len(results) / wall:,.1f}")
    print(f"  turns/s          {10 * len(results) / wall:,.0f}")
    print(f"  trigger→done     {ms(seconds)}")
    print(f"  overhead         {ms([s - model_s for s in seconds])}   (minus {model_s:g} s of model time)")
    for stage, values in stages.items():
        print(f"  {stage:<16} {ms(values)}")
    for name, mb in sorted(peaks.items()):
        print(f"  {name:<12} peak RSS {mb:,.0f} MB, CPU {cpu.get(name, 0.0) / wall:.0%} of a core")
    for name in ("postgres", "kafka", "machine (2 cores)"):
        print(
            f"  {name:<12} CPU {cpu[name] / wall:.0%}" + ("" if name.startswith("machine") else " of a core")
        )


STAGES = (
    ("queued", "started", "to the claim"),
    ("started", "completed", "conversation"),
    ("completed", "scored", "to scored"),
    ("scored", "done", "to done"),
)


async def stage_latencies(database_url: str) -> dict[str, list[float]]:
    """Seconds between lifecycle events of each run, from the event store (commit times)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT run_id, type, created_at FROM outbox"
            " WHERE sequence IS NOT NULL AND type <> 'agent_eval.run.turn'"
        )
    finally:
        await conn.close()
    times: dict[object, dict[str, datetime]] = {}
    for row in rows:
        times.setdefault(row["run_id"], {})[row["type"].removeprefix("agent_eval.run.")] = row["created_at"]
    stages: dict[str, list[float]] = {}
    for first, second, label in STAGES:
        stages[label] = [
            (t[second] - t[first]).total_seconds() for t in times.values() if first in t and second in t
        ]
    return stages


def ms(seconds: list[float]) -> str:
    return f"p50 {percentile(seconds, 0.5) * 1000:,.0f} ms   p99 {percentile(seconds, 0.99) * 1000:,.0f} ms"


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="mode", required=True)
    load = sub.add_parser("throughput", help="ten-turn runs through the whole pipeline")
    load.add_argument("--runs", type=int, default=1000)
    load.add_argument("--clients", type=int, default=100, help="blocking POSTs in flight")
    load.add_argument("--executors", type=int, default=1)
    load.add_argument("--scorers", type=int, default=1)
    load.add_argument("--billers", type=int, default=1)
    load.add_argument("--latency", type=float, default=0.0, help="simulated seconds per model call")
    held = sub.add_parser("capacity", help="conversations one executor holds at 1 s model latency")
    held.add_argument("--conversations", type=int, default=1000)
    blocked = sub.add_parser("waiters", help="blocked POSTs one gateway holds")
    blocked.add_argument("--waiters", type=int, default=5000)
    args = parser.parse_args()
    server_url = os.environ.get("AGENT_EVAL_DATABASE_URL")
    bootstrap = os.environ.get("AGENT_EVAL_KAFKA_BOOTSTRAP")
    if not server_url or not bootstrap:
        print("run `scripts/services up` and `source .services/env` first")
        return 2
    with tempfile.TemporaryDirectory(prefix="agent-eval-bench-") as logs:
        modes = {"throughput": throughput, "capacity": capacity, "waiters": waiters}
        modes[args.mode](args, server_url, bootstrap, Path(logs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
