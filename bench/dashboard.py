"""How long the dashboard's Runs page takes to render with 100,000 runs of one company (the
requirement: p95 under 150 ms on this 2-core machine).

    .venv/bin/python -m bench.dashboard [--runs 100000] [--other-runs 5000] [--requests 200]
    source .services/env && .venv/bin/python -m bench.dashboard --fast-database

A PostgreSQL server of its own with production settings (fsync and synchronous commits on;
`--fast-database`: the test server of `scripts/services`, durability off), a migrated database,
a company and its API key made by the service's own functions, and the runs of
`bench.dashboard_data` (a real run cloned into `--runs` over 30 days; `--other-runs` of a second
company). The real gateway app (`create_app`, the dashboard's session secret set) is served by a
child process as `agent-eval serve` serves it (uvloop, the CLI's garbage-collector tuning, JSON
logs, here to a file), not in this process: the client's work then neither delays the server nor
counts as its CPU, which is read from /proc around each request (schedstat: the run time of the
process's threads, in ns, not clock ticks). PostgreSQL's CPU is read the same way from the
backends of the gateway's connections.

The client (aiohttp, a cookie jar) signs in through the form (GET /ui/signin, its csrf_token,
POST the key) and times, wall clock, each kind of request: the first page, a deep page (the
"Older runs" link followed `--depth` times), filters by status, label and two date ranges (3 to
2 weeks ago, and the oldest days), and one run's page. `--warmups` rounds, then `--requests`
rounds, one request at a time, each round one request of each kind in a shuffled order (the
machine's speed drifts; every kind sees the same drift). Prints p50/p95/p99 per kind, CPU per
request, what the pages' statements cost (pg_stat_statements, own server only) and EXPLAIN
(ANALYZE, BUFFERS) of the list query of each list kind. Not a test: nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.synchronize
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.process import BaseProcess
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import uvloop
from pydantic import SecretStr

from bench import statements
from bench.dashboard_client import Meter, Samples, backend_pids, deep_query, sign_in, timed_get
from bench.dashboard_data import Dataset, make_dataset
from bench.dashboard_plans import Plan, explain_page
from bench.dashboard_plans import lines as plan_lines
from bench.stack import bench_database_server, drop, machine_busy_seconds, percentile, wait_ready
from bench.statements import PerRun
from service.cli import tune_gc
from service.core.logging import configure_logging
from service.core.settings import Settings
from service.db.postgres import create_pool
from service.gateway.app import create_app
from service.gateway.ui.runs import RunsQuery
from service.local.pgserver import free_port
from service.runtime.serving import serving

LIMIT_MS = 150.0
SECRET = "bench-dashboard-session-secret-0123456789abcdef"  # noqa: S105 — a throw-away server's


def serve_gateway(
    database_url: str, port: int, log_path: str, stop: multiprocessing.synchronize.Event
) -> None:
    """The child process: the gateway as `agent-eval serve` runs it, until `stop` is set."""
    settings = Settings(database_url=SecretStr(database_url), ui_session_secret=SecretStr(SECRET))
    with Path(log_path).open("a") as log:
        configure_logging(settings.log_level, "json", stream=log)
        tune_gc()  # as the CLI does: without it, a full collection (~60 ms) lands on 1 request in 20

        async def main() -> None:
            async with serving(create_app(settings), "127.0.0.1", port):
                await asyncio.to_thread(stop.wait)

        uvloop.run(main())


@contextlib.contextmanager
def gateway(database_url: str, logs: Path) -> Iterator[tuple[str, int]]:
    """The gateway served by a child process: (its base URL, its pid)."""
    context = multiprocessing.get_context("spawn")
    stop, port = context.Event(), free_port()
    child = context.Process(target=serve_gateway, args=(database_url, port, str(logs / "gateway.log"), stop))
    child.start()
    try:
        base = f"http://127.0.0.1:{port}"
        await_ready(child, f"{base}/readyz", logs / "gateway.log")
        assert child.pid is not None  # started
        yield base, child.pid
    finally:
        stop.set()
        child.join(30)
        if child.is_alive():
            child.terminate()
            child.join(10)


def await_ready(child: BaseProcess, url: str, log: Path, timeout_s: float = 60.0) -> None:
    """Until the gateway answers `url`; a child that exits first raises with its log's end."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            wait_ready(url, timeout_s=1.0)
            return
        except TimeoutError:
            if not child.is_alive():
                ended = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"the gateway exited with {child.exitcode}:\n{ended}") from None
            if time.monotonic() > deadline:
                raise


@dataclass(frozen=True)
class Kind:
    name: str
    path: str
    query: dict[str, str] | None  # the Runs page's query; None: another page


def runs_kind(name: str, query: dict[str, str]) -> Kind:
    return Kind(name, f"/ui/runs?{urlencode(query)}" if query else "/ui/runs", query)


async def request_kinds(
    session: aiohttp.ClientSession, base: str, dataset: Dataset, depth: int
) -> list[Kind]:
    today = datetime.now(UTC).date()
    weeks_ago = {"since": str(today - timedelta(days=21)), "until": str(today - timedelta(days=14))}
    oldest = {"since": str(today - timedelta(days=31)), "until": str(today - timedelta(days=28))}
    return [
        runs_kind("first page", {}),
        runs_kind(f"deep page ({depth} pages)", await deep_query(session, base, depth)),
        runs_kind("status=failed", {"status": "failed"}),
        runs_kind("label branch=main", {"label": "branch=main"}),
        runs_kind("3 to 2 weeks ago", weeks_ago),
        runs_kind("4+ weeks ago (oldest)", oldest),
        Kind("run page", f"/ui/runs/{dataset.transcript_run}", None),
    ]


@dataclass(frozen=True)
class Measured:
    samples: dict[str, Samples]
    seconds: float
    machine_busy: float  # the share of all cores, while measuring
    load: tuple[float, float, float]  # the load average at the end
    statements: PerRun | None
    plans: dict[str, Plan]


async def measure(args: argparse.Namespace, dataset: Dataset, base: str, pid: int, durable: bool) -> Measured:
    jar = aiohttp.CookieJar(unsafe=True)  # the gateway is at an IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        await sign_in(session, base, dataset.key)
        kinds = await request_kinds(session, base, dataset, args.depth)
        samples = {k.name: Samples() for k in kinds}
        shuffled = random.Random(17)  # noqa: S311 — an order, not a secret
        for _ in range(args.warmups):
            for kind in shuffled.sample(kinds, len(kinds)):
                await timed_get(session, f"{base}{kind.path}", samples[kind.name], None)
        if durable:
            await statements.reset(dataset.database_url)
        meter = Meter(pid, await backend_pids(dataset.database_url))
        busy, started = machine_busy_seconds(), time.monotonic()
        for _ in range(args.requests):
            for kind in shuffled.sample(kinds, len(kinds)):
                await timed_get(session, f"{base}{kind.path}", samples[kind.name], meter)
        seconds = time.monotonic() - started
        busy = (machine_busy_seconds() - busy) / ((os.cpu_count() or 1) * seconds)
    load = os.getloadavg()
    per_page = None
    if durable:
        per_page = await statements.per_run(dataset.database_url, args.requests * len(kinds), top=8)
    plans = await explain(dataset, kinds)
    return Measured(samples, seconds, busy, load, per_page, plans)


async def explain(dataset: Dataset, kinds: list[Kind]) -> dict[str, Plan]:
    """The list query of each kind of the Runs page, with the filters and cursor the page reads."""
    pool = await create_pool(dataset.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            plans = {}
            for kind in kinds:
                if kind.query is not None:
                    query = RunsQuery.model_validate(kind.query)
                    plans[kind.name] = await explain_page(
                        conn, dataset.company_id, query.filters(), query.before
                    )
    finally:
        await pool.close()
    return plans


def report(args: argparse.Namespace, measured: Measured) -> None:
    rounds = f"{args.requests} requests of each kind, one at a time, after {args.warmups} warm-up rounds"
    print(f"  measured: {rounds}")
    load = " ".join(f"{x:.2f}" for x in measured.load)
    print(
        f"  machine while measuring: {measured.machine_busy:.0%} of all cores busy (this client, the "
        f"gateway, PostgreSQL and anything else); load average after {load}"
    )
    head = f"{'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}  {'gateway CPU':>11} {'PG CPU':>7}  rows  page"
    print(f"  {'request':<22} {head}")
    for name, s in measured.samples.items():
        q = [percentile(s.wall_ms, p) for p in (0.50, 0.95, 0.99, 1.0)]
        flag = "  OVER" if q[1] > LIMIT_MS else ""
        print(
            f"  {name:<22} {q[0]:7.1f} {q[1]:7.1f} {q[2]:7.1f} {q[3]:7.1f}  {_mean(s.gateway_ms):8.1f} ms "
            f"{_mean(s.postgres_ms):4.1f} ms  {s.rows if s.rows >= 0 else '-':>4} {s.size / 1024:4.0f} kB"
            + (f"  {s.errors} errors" if s.errors else "")
            + flag
        )
    print("  (wall clock in ms; CPU: mean per request, the gateway process's and its PostgreSQL backends')")
    if measured.statements is not None:
        print("  statements, all kinds together (pg_stat_statements): calls per request, then per call:")
        print("    calls  execution  planning    rows  statement")
        for st in measured.statements.top:
            calls = max(st.calls, 1e-9)
            print(
                f"    {st.calls:5.2f} {st.exec_ms / calls:7.2f} ms {st.plan_ms / calls:6.2f} ms "
                f"{st.rows / calls:7.1f}  {condensed(st.query)}"
            )
    print("  EXPLAIN (ANALYZE, BUFFERS) of the list query (custom plan):")
    for name, plan in measured.plans.items():
        for line in plan_lines(name, plan):
            print(line)


def condensed(query: str, width: int = 120) -> str:
    """A statement with its long column list elided, cut to `width`."""
    return re.sub(r"^SELECT (.{40,}?) FROM ", "SELECT … FROM ", query)[:width]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def summary(dataset: Dataset, measured: Measured) -> dict[str, object]:
    kinds = {
        name: {
            "p50_ms": percentile(s.wall_ms, 0.50),
            "p95_ms": percentile(s.wall_ms, 0.95),
            "p99_ms": percentile(s.wall_ms, 0.99),
            "gateway_cpu_ms": _mean(s.gateway_ms),
            "postgres_cpu_ms": _mean(s.postgres_ms),
            "errors": s.errors,
        }
        for name, s in measured.samples.items()
    }
    return {"bench": "dashboard", "runs": dataset.runs, "limit_ms": LIMIT_MS, "kinds": kinds}


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs of the company measured")
    parser.add_argument("--other-runs", type=int, default=5_000, help="runs of a second company")
    parser.add_argument("--requests", type=int, default=200, help="timed requests of each kind")
    parser.add_argument("--warmups", type=int, default=20, help="untimed rounds first")
    parser.add_argument("--depth", type=int, default=200, help="pages the deep page is from the first")
    parser.add_argument(
        "--fast-database",
        action="store_true",
        help="use the test server (durability off) instead of a durable PostgreSQL of its own",
    )
    args = parser.parse_args()
    started, durable = time.monotonic(), not args.fast_database
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    preload = statements.PRELOAD if durable else None
    with bench_database_server(durable, preload) as server_url:
        if server_url is None:
            return 2
        kind = (
            "its own, durable (fsync, synchronous_commit on)" if durable else "test server (durability off)"
        )
        print(
            f"dashboard: the Runs page with {args.runs:,} runs of one company; limit p95 < {LIMIT_MS:.0f} ms"
        )
        print(f"  database: {kind}; machine: {os.cpu_count()} cores, load average at the start {load}")
        dataset = asyncio.run(make_dataset(server_url, args.runs, args.other_runs))
        try:
            print(
                f"  seeded {dataset.runs:,} + {dataset.other_runs:,} runs in {dataset.seconds:.1f} s "
                f"(INSERT ... SELECT and ANALYZE); a run's config {dataset.config_bytes[0]:,} B of JSON, "
                f"{dataset.config_bytes[1]:,} B stored; eval_runs {dataset.sizes}"
            )
            with (
                tempfile.TemporaryDirectory(prefix="agent-eval-bench-") as logs,
                gateway(dataset.database_url, Path(logs)) as (base, pid),
            ):
                measured = asyncio.run(measure(args, dataset, base, pid, durable))
            report(args, measured)
            print(json.dumps(summary(dataset, measured)))
        finally:
            asyncio.run(drop(server_url, dataset.database))
    print(f"  total time {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
