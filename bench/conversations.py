"""Peers-shaped conversations benchmark (issue 16): ten-message conversations whose agent and
persona both talk to an OpenAI-compatible model server (`bench.model_server`, its own process,
answering after `--model-latency`), on the full stack (`--mode stack`: gateway, relay,
executor(s), scorer, biller, notifier as processes on a PostgreSQL server and a Kafka broker of the
benchmark's own) or on `agent-eval dev` (`--mode dev`: one process, embedded PostgreSQL,
in-process bus). `--runs` runs, `--concurrency` in flight, triggered through the HTTP API
(`bench.overload_load`: a blocking POST with `Prefer: wait=60`, then polls until done).

    .venv/bin/python -m bench.conversations [--mode stack|dev] [--runs 2000] [--concurrency 500]
        [--model-latency 0.2] [--executors 1] [--executor-processes 1] [--fast-database]

`--executor-processes N` goes to `consume executor --processes N` (`dev --executor-processes N`)
whenever the CLI has the flag, 1 included (its own default is one per core); a CLI without it
runs one. The per-company in-flight cap is `--max-inflight` (default: the concurrency), printed.
PostgreSQL is durable (fsync, synchronous_commit on) unless `--fast-database` (stack mode only;
dev's embedded server is always durable). Before the load each process group's idle CPU is
measured for `--idle-seconds` and its rate times the measured interval is subtracted. Prints
conversations/hour, CPU per conversation by process group (service roles, PostgreSQL, Kafka; the
model server and the benchmark's clients apart), peak memory, model calls and messages per
conversation, trigger→done p50/p99 and the overhead above model time, the queue (time to the
claim, oldest pending age), then a one-line JSON summary. No other service is needed (the Kafka
jars come from `.services/`, fetched there on first use). Not a test: nothing asserts a number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import asyncpg

from bench import statements
from bench.burst import allow_open_files
from bench.conversations_cpu import MemoryWatch, rates
from bench.conversations_report import MACHINE, Measured, report
from bench.conversations_services import SYSTEM, Running, dev_stack, full_stack, say
from bench.overload import model_calls
from bench.overload_figures import Sampler, stored
from bench.overload_load import Aborted, offer
from bench.stack import machine_busy_seconds, speed_probe_s

DRAIN_TIMEOUT_S = 60.0


def cpu_now(running: Running) -> dict[str, float]:
    return {**running.groups.cpu_seconds(), MACHINE: machine_busy_seconds()}


SETTLE_TIMEOUT_S = 60.0
SETTLED_CORE = 0.15  # the system's groups together, as a share of one core


def settled(running: Running, timeout_s: float = SETTLE_TIMEOUT_S) -> float:
    """Seconds waited until the system's processes are quiet: ready is not idle (the executor
    children of `agent-eval dev` still start after its API answers, which would count as idle
    load, then be subtracted from the run's figures)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        busy = idle_rates(running, 1.0)
        if sum(rate for name, rate in busy.items() if running.kinds.get(name) == SYSTEM) < SETTLED_CORE:
            break
    return time.monotonic() - started


def idle_rates(running: Running, seconds: float) -> dict[str, float]:
    """Each group's (and the machine's) CPU seconds per second while nothing is offered."""
    before, started = cpu_now(running), time.monotonic()
    time.sleep(seconds)
    return rates(before, cpu_now(running), time.monotonic() - started)


async def drained(database_url: str, timeout_s: float) -> None:
    """Until every outbox record is published (the last runs' events), at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    conn = await asyncpg.connect(database_url)
    try:
        while time.monotonic() < deadline:
            if not await conn.fetchval("SELECT count(*) FROM outbox_pending"):
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def measure(running: Running, args: argparse.Namespace) -> Measured:
    """The idle baseline (once start-up work has settled), then the load, then the drain; the
    figures of all three."""
    say(f"quiet after {settled(running):.1f} s more; idle baseline for {args.idle_seconds:g} s")
    idle = idle_rates(running, args.idle_seconds)
    speed = speed_probe_s()
    sampler, memory = Sampler(running.metrics, {}, {}), MemoryWatch(running.groups)  # no /readyz polls
    calls_before, cpu_before = model_calls(running.model_url), cpu_now(running)
    load = argparse.Namespace(runs=args.runs, offered=args.concurrency, timeout=args.timeout)
    if args.statements:
        asyncio.run(statements.reset(running.seeded.database_url))
    sampler.start()
    memory.start()
    started = time.monotonic()
    try:
        driven = asyncio.run(offer(running.base, running.seeded.key, running.case_id, load, running.dead))
        wall = time.monotonic() - started
        asyncio.run(drained(running.seeded.database_url, DRAIN_TIMEOUT_S))
    finally:
        sampler.stop()
        memory.stop()
    interval = time.monotonic() - started
    cpu_after = cpu_now(running)
    cpu = {k: v - cpu_before.get(k, 0.0) - idle.get(k, 0.0) * interval for k, v in cpu_after.items()}
    cpu[MACHINE] = cpu_after[MACHINE] - cpu_before[MACHINE]  # raw: others' work there is not idle
    return Measured(
        driven=driven,
        wall_s=wall,
        cpu_s=cpu,
        idle=idle,
        kinds=running.kinds,
        calls=model_calls(running.model_url) - calls_before,
        db=asyncio.run(stored(running.seeded.database_url, running.seeded.company_id)),
        sampler=sampler,
        peak_mb=running.groups.peak_rss_mb(),
        pss_mb=memory.highest,
        durability=running.durability,
        speed_probe_s=speed,
        statements=(
            asyncio.run(statements.per_run(running.seeded.database_url, args.runs, args.statements))
            if args.statements
            else None
        ),
    )


@contextlib.contextmanager
def system(args: argparse.Namespace, folder: Path, logs: Path) -> Iterator[Running]:
    with (dev_stack if args.mode == "dev" else full_stack)(args, folder, logs) as running:
        yield running


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mode", choices=("stack", "dev"), default="stack")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=500, help="runs in flight: clients at a time")
    parser.add_argument("--model-latency", type=float, default=0.2, help="seconds per model answer")
    parser.add_argument("--persona", choices=("model", "scripted"), default="model")
    parser.add_argument("--executors", type=int, default=1, help="executor processes (stack mode)")
    parser.add_argument("--executor-processes", type=int, default=1, help="`--processes N` of each executor")
    parser.add_argument("--max-inflight", type=int, default=0, help="per-company cap (default: concurrency)")
    parser.add_argument("--fast-database", action="store_true", help="fsync, synchronous_commit off (stack)")
    parser.add_argument("--idle-seconds", type=float, default=3.0, help="idle baseline measured this long")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs and say where")
    parser.add_argument(
        "--statements", type=int, default=0, help="print the N statements costing most (pg_stat_statements)"
    )
    args = parser.parse_args()
    args.max_inflight = args.max_inflight or args.concurrency
    if args.fast_database and args.mode == "dev":
        parser.error("--fast-database is for --mode stack: agent-eval dev's PostgreSQL is always durable")
    if args.statements and args.mode == "dev":
        parser.error("--statements is for --mode stack: agent-eval dev starts its PostgreSQL itself")
    return args


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: every process and folder is cleaned up


def main() -> int:
    args = parse()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    allow_open_files(4 * args.concurrency + 2000)
    logs = Path(tempfile.mkdtemp(prefix="agent-eval-conversations-"))
    started = time.monotonic()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="agent-eval-conversations-") as folder,
            system(args, Path(folder), logs) as running,
        ):
            say(f"ready in {time.monotonic() - started:.1f} s")
            measured = measure(running, args)
    except Aborted as error:
        say(f"aborted: {error} (logs kept in {logs})")
        return 1
    except Exception:
        say(f"failed; the processes' logs are kept in {logs}")
        raise
    if args.keep_logs:
        say(f"logs kept in {logs}")
    else:
        shutil.rmtree(logs)
    report(args, measured, total_s=time.monotonic() - started)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("conversations: interrupted; every process it started is stopped")
        sys.exit(130)
