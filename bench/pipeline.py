"""The run pipeline under load, on the real services: gateway, relay, executors, scorers and
billers as separate `agent-eval` processes on Kafka and PostgreSQL (started by
`scripts/services up`), runs driven through the HTTP API with the `scripted` model.

    source .services/env && .venv/bin/python -m bench.pipeline throughput [--runs 1000] [--executors 1]
    source .services/env && .venv/bin/python -m bench.pipeline throughput --agent prompt,flow,http
    source .services/env && .venv/bin/python -m bench.pipeline capacity [--conversations 1000]
    source .services/env && .venv/bin/python -m bench.pipeline waiters [--waiters 5000]

`throughput`: M ten-turn runs (five persona lines, five agent replies, max_turns 10), each
triggered with a blocking POST, `--clients` at a time; prints runs/s, turns/s, trigger→done
p50/p99, the pipeline overhead (trigger→done minus the simulated model time) and each process's
peak RSS. With `--agent` naming several kinds (`bench.agent_kinds`: prompt, flow, http), each
is measured in turn on the same services, and a table compares their runs/s and our processes'
CPU per run. `capacity` and `waiters` (`bench.holding`): how many conversations one executor
holds and how many blocked POSTs one gateway holds. Not a test: nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp
import asyncpg

from bench import statements
from bench.agent_kinds import KINDS, make_case, start_agent_server
from bench.holding import capacity, waiters
from bench.pipeline_stack import Stack
from bench.stack import bench_database_server, machine_cpu, percentile
from bench.statements import PerRun
from bench.statements import lines as statement_lines
from bench.stragglers import straggler_report

INFRASTRUCTURE = ("postgres", "kafka", "http-agent")


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


@dataclass(frozen=True)
class Measured:
    """One agent kind's figures: each run's trigger→done seconds and status, the wall time, the
    CPU seconds of each process over it, and the lifecycle stage latencies."""

    kind: str
    results: list[tuple[float, str]]
    wall_s: float
    cpu_s: dict[str, float]
    stages: dict[str, list[float]]
    stragglers: list[str]
    statements: PerRun | None  # with `--statements N`

    def runs_per_s(self) -> float:
        return len(self.results) / self.wall_s

    def our_cpu_ms_per_run(self) -> float:
        """CPU of the service's own processes (not PostgreSQL, Kafka or the user's agent) per run."""
        ours = sum(
            v for k, v in self.cpu_s.items() if k not in INFRASTRUCTURE and not k.startswith("machine")
        )
        return ours / len(self.results) * 1000


def measure(stack: Stack, args: argparse.Namespace, kind: str, agent_url: str | None) -> Measured:
    key = stack.seeded.key
    case_id = make_case(stack.base, key, max_turns=10, lines=5, kind=kind, agent_url=agent_url)
    asyncio.run(drive(stack.base, key, case_id, min(50, args.runs), args.clients))  # warm-up
    if args.statements:
        asyncio.run(statements.reset(stack.seeded.database_url))
    since = datetime.now().astimezone()
    cpu_before = {**stack.processes.cpu_seconds(), **machine_cpu()}
    started = time.monotonic()
    results = asyncio.run(drive(stack.base, key, case_id, args.runs, args.clients))
    wall = time.monotonic() - started
    cpu_after = {**stack.processes.cpu_seconds(), **machine_cpu()}
    cpu = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_after.items()}
    stages = asyncio.run(stage_latencies(stack.seeded.database_url, since))
    stragglers = asyncio.run(straggler_report(stack.seeded.database_url, since))
    per_run = (
        asyncio.run(statements.per_run(stack.seeded.database_url, args.runs, args.statements))
        if args.statements
        else None
    )
    return Measured(kind, results, wall, cpu, stages, stragglers, per_run)


def throughput(args: argparse.Namespace, server_url: str, bootstrap: str, logs: Path) -> None:
    kinds = [k.strip() for k in args.agent.split(",") if k.strip()]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise SystemExit(
            f"--agent: unknown kind(s) {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}"
        )
    env = {
        "AGENT_EVAL_SCRIPTED_LATENCY_S": str(args.latency),
        "AGENT_EVAL_AGENT_ALLOWED_NETWORKS": "127.0.0.1/32",
    }
    stack = Stack(server_url, bootstrap, logs, env)
    try:
        stack.start(
            executors=args.executors,
            scorers=args.scorers,
            billers=args.billers,
            executor_processes=args.executor_processes,
        )
        agent_url = start_agent_server(stack.processes) if "http" in kinds else None
        measured = [measure(stack, args, kind, agent_url) for kind in kinds]
        peaks = stack.processes.peak_rss_mb()
    finally:
        stack.close(keep=args.keep)
    if args.keep:
        print(f"kept: database {stack.seeded.database_url}, logs {logs}")
    for figures in measured:
        report(args, figures)
    for name, mb in sorted(peaks.items()):
        print(f"  {name:<12} peak RSS {mb:,.0f} MB")
    if len(measured) > 1:
        compare(measured)


def report(args: argparse.Namespace, m: Measured) -> None:
    seconds = [r[0] for r in m.results]
    model_s = 10 * args.latency
    statuses = {status: sum(1 for _, s in m.results if s == status) for _, status in m.results}
    print(
        f"pipeline: {args.runs} ten-turn scripted runs of a {m.kind} agent, {args.latency:g} s per model "
        f"call, {args.clients} clients"
    )
    print(
        f"  processes        gateway, relay, {args.executors} executor(s)"
        f" of {args.executor_processes} process(es), "
        f"{args.scorers} scorer(s), "
        f"{args.billers} biller(s)"
    )
    print(f"  statuses         {statuses}")
    print(f"  runs/s           {m.runs_per_s():,.1f}")
    print(f"  turns/s          {10 * len(m.results) / m.wall_s:,.0f}")
    print(f"  trigger→done     {ms(seconds)}")
    print(f"  overhead         {ms([s - model_s for s in seconds])}   (minus {model_s:g} s of model time)")
    for stage, values in m.stages.items():
        print(f"  {stage:<16} {ms(values)}")
    print(f"  our CPU per run  {m.our_cpu_ms_per_run():,.1f} ms")
    print("\n".join(f"  {line}" for line in m.stragglers))
    for name, seconds_used in sorted(m.cpu_s.items()):
        label = name if name.startswith("machine") else f"{name} of a core"
        print(f"  {'CPU ' + label:<34} {seconds_used / m.wall_s:.0%}")
    if m.statements is not None:
        print("\n".join(statement_lines(m.statements)))


def compare(measured: list[Measured]) -> None:
    base = measured[0]
    print(f"agents compared (same services, same run; vs {base.kind}):")
    print(f"  {'agent':<8} {'runs/s':>8} {'vs':>7} {'our CPU/run':>12} {'vs':>7}")
    for m in measured:
        speed = m.runs_per_s() / base.runs_per_s() - 1
        cpu = m.our_cpu_ms_per_run() / base.our_cpu_ms_per_run() - 1
        cpu_ms = m.our_cpu_ms_per_run()
        print(f"  {m.kind:<8} {m.runs_per_s():>8,.1f} {speed:>+7.0%} {cpu_ms:>9,.1f} ms {cpu:>+7.0%}")


STAGES = (
    ("queued", "started", "to the claim"),
    ("started", "completed", "conversation"),
    ("completed", "scored", "to scored"),
    ("scored", "done", "to done"),
)


async def stage_latencies(database_url: str, since: datetime) -> dict[str, list[float]]:
    """Seconds between lifecycle events of each run created after `since`, from the event store
    (commit times)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT o.run_id, o.type, o.created_at FROM outbox o JOIN eval_runs r ON r.id = o.run_id"
            " WHERE o.sequence IS NOT NULL AND o.type <> 'agent_eval.run.turn' AND r.created_at >= $1",
            since,
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
    return (
        f"p50 {percentile(seconds, 0.5) * 1000:,.0f} ms   p99 {percentile(seconds, 0.99) * 1000:,.0f} ms"
        f"   max {max(seconds, default=0.0) * 1000:,.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="mode", required=True)
    load = sub.add_parser("throughput", help="ten-turn runs through the whole pipeline")
    load.add_argument("--runs", type=int, default=1000)
    load.add_argument("--clients", type=int, default=100, help="blocking POSTs in flight")
    load.add_argument("--executors", type=int, default=1)
    load.add_argument("--executor-processes", type=int, default=1, help="--processes of each executor")
    load.add_argument("--scorers", type=int, default=1)
    load.add_argument("--billers", type=int, default=1)
    load.add_argument("--latency", type=float, default=0.0, help="simulated seconds per model call")
    load.add_argument("--agent", default="prompt", help=f"agent kinds, comma-separated: {', '.join(KINDS)}")
    load.add_argument("--keep", action="store_true", help="keep the database and the processes' logs")
    load.add_argument(
        "--statements", type=int, default=0, help="print the N statements costing most (with --durable)"
    )
    held = sub.add_parser("capacity", help="conversations one executor holds at 1 s model latency")
    held.add_argument("--conversations", type=int, default=1000)
    blocked = sub.add_parser("waiters", help="blocked POSTs one gateway holds")
    blocked.add_argument("--waiters", type=int, default=5000)
    for mode in (load, held, blocked):
        mode.add_argument(
            "--durable",
            action="store_true",
            help="a PostgreSQL server of the benchmark's own with fsync and synchronous commits on "
            "(production-like); otherwise the services' test server (durability off)",
        )
    args = parser.parse_args()
    bootstrap = os.environ.get("AGENT_EVAL_KAFKA_BOOTSTRAP")
    if not bootstrap:  # the database: `bench_database_server` says what is missing
        print("run `scripts/services up` and `source .services/env` first")
        return 2
    modes = {"throughput": throughput, "capacity": capacity, "waiters": waiters}
    if getattr(args, "statements", 0) and not args.durable:
        parser.error("--statements needs --durable: the test server is shared and has no pg_stat_statements")
    preload = statements.PRELOAD if getattr(args, "statements", 0) else None
    with bench_database_server(args.durable, preload) as server_url:
        if server_url is None:
            return 2
        kind = "durable (fsync, synchronous_commit on)" if args.durable else "test server (durability off)"
        print(f"database: {kind}")
        if getattr(args, "keep", False):
            modes[args.mode](args, server_url, bootstrap, Path(tempfile.mkdtemp(prefix="agent-eval-bench-")))
            return 0
        with tempfile.TemporaryDirectory(prefix="agent-eval-bench-") as logs:
            modes[args.mode](args, server_url, bootstrap, Path(logs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
