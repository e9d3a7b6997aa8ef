"""Webhook delivery under load, on the real services: the relay and a notifier as separate
`agent-eval` processes on Kafka and PostgreSQL (from `scripts/services up`), two local receivers
(one answers at once, one after `--slow-s` seconds), every `run.done` subscribed by both.

    source .services/env && .venv/bin/python -m bench.webhooks [--runs 2000] [--rate 600] [--slow-s 2]

Runs are created through the trigger operation (no executor runs them), marked over, and then
finished as the biller finishes them (`run.billed` + `run.done` in one statement), `--rate` per
second; a second phase leaves a backlog for a fresh notifier to drain. Prints
deliveries/s to the fast receiver, the latency from each `run.done` commit to its receipt
(p50/p99/max) at the fast receiver while the slow one lags, what the slow one got meanwhile,
and the notifier's peak RSS and CPU. Not a test: nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from aiohttp import web
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bench.stack import (
    Processes,
    Seeded,
    bench_database_server,
    create_case,
    drop,
    http,
    peak_rss_mb,
    percentile,
    seed,
    wait_ready,
)
from schemas.runs import RunTrigger
from service.core.settings import Settings
from service.db import results
from service.db.postgres import Pool, connection, create_pool
from service.gateway.app import create_app
from service.local.pgserver import free_port
from service.runs.triggers import trigger_case_run
from service.runtime.serving import serving


@dataclass
class Receiver:
    """Records when each run's delivery arrived (wall clock, seconds)."""

    delay_s: float
    arrived: dict[str, float] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.arrived.setdefault(body["data"]["id"], time.time())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.Response(text="ok")

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response(self.arrived)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/", self.handle)
        app.router.add_get("/stats", self.stats)
        return app


def serve_receivers(fast_port: int, slow_port: int, slow_s: float) -> None:
    """The two receivers, in a process of their own (so the load generator cannot slow them)."""

    async def main() -> None:
        async with (
            serving(Receiver(0.0).app(), "127.0.0.1", fast_port),
            serving(Receiver(slow_s).app(), "127.0.0.1", slow_port),
        ):
            await asyncio.Event().wait()

    asyncio.run(main())


def arrivals(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as response:  # noqa: S310 — our own server
        got: dict[str, float] = json.loads(response.read())
        return got


async def make_runs(
    pool: Pool, settings: Settings, company_id: UUID, case_id: UUID, count: int
) -> list[UUID]:
    made = []
    for _ in range(count):
        triggered = await trigger_case_run(
            pool, settings, company_id=company_id, case_id=case_id, body=RunTrigger(), key=None
        )
        made.append(triggered.run_id)
    return made


async def conversations_over(pool: Pool, run_ids: list[UUID]) -> None:
    """As if every run's conversation had ended and been scored (before measuring)."""
    async with connection(pool) as conn:
        await conn.execute(
            "UPDATE eval_runs SET status = 'completed', termination_reason = 'persona_goodbye',"
            " queue_status = 'claimed', claimed_by = 'bench', attempt = 1, lease_expires_at = now(),"
            " started_at = now(), ended_at = now(), scored_at = now() WHERE id = ANY($1::uuid[])",
            run_ids,
        )


async def finish(pool: Pool, run_id: UUID) -> float:
    """Bill the run as the biller does (costs, queue_status done, `run.billed` and `run.done` in
    one statement); returns the wall-clock time of the commit."""
    async with connection(pool) as conn:
        await results.record_bill(conn, run_id, results.BilledUsage(0, 0, 0, 0, 0, 0, 0, 0, 0))
    return time.time()


async def emit(pool: Pool, run_ids: list[UUID], rate: float) -> dict[str, float]:
    """Finish the runs at `rate` per second (in small concurrent batches)."""
    committed: dict[str, float] = {}
    batch = 10
    interval = batch / rate
    started = time.monotonic()
    for index in range(0, len(run_ids), batch):
        chunk = run_ids[index : index + batch]
        times = await asyncio.gather(*(finish(pool, run_id) for run_id in chunk))
        committed.update({str(r): t for r, t in zip(chunk, times, strict=True)})
        ahead = started + (index // batch + 1) * interval - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
    return committed


async def wait_for(url: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(await asyncio.to_thread(arrivals, url)) < count:  # noqa: ASYNC110 — polling another process
        await asyncio.sleep(0.2)


@dataclass
class Stage:
    """What both phases share: the database, settings, receivers, processes and the case."""

    args: argparse.Namespace
    pool: Pool
    settings: Settings
    processes: Processes
    company_id: UUID
    case_id: UUID
    fast_url: str
    slow_url: str
    health: int

    def start_notifier(self) -> int:
        env = {"AGENT_EVAL_HEALTH_PORT": str(self.health)}
        return self.processes.start("notifier", "consume", "notifier", env=env).pid

    async def runs_over(self) -> list[UUID]:
        made = await make_runs(self.pool, self.settings, self.company_id, self.case_id, self.args.runs)
        await conversations_over(self.pool, made)
        return made


async def latency_phase(stage: Stage) -> None:
    """`run.done` at `--rate` with the notifier running: latency and throughput under load."""
    args = stage.args
    print(f"creating {args.runs} runs ...", flush=True)
    run_ids = await stage.runs_over()
    notifier = stage.start_notifier()
    await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{stage.health}/readyz")
    await asyncio.sleep(3)  # let the run.queued backlog drain before measuring
    cpu_before = _cpu(notifier)
    print(f"finishing {args.runs} runs at {args.rate}/s ...", flush=True)
    committed = await emit(stage.pool, run_ids, args.rate)
    await wait_for(stage.fast_url, args.runs, timeout_s=120)
    report(
        args,
        committed,
        (arrivals(stage.fast_url), arrivals(stage.slow_url)),
        stages=await stage_times(stage.pool, stage.fast_url),
        rss_mb=peak_rss_mb(notifier),
        cpu_s=_cpu(notifier) - cpu_before,
    )


async def drain_phase(stage: Stage) -> None:
    """`--runs` more `run.done` while no notifier runs, then a fresh one drains them: the most
    deliveries a second one notifier makes."""
    stage.processes.stop("notifier")
    print(f"\nbacklog: {stage.args.runs} more run.done events while the notifier is stopped ...", flush=True)
    backlog = set(await stage.runs_over())
    await emit(stage.pool, list(backlog), rate=100_000)
    await asyncio.sleep(3)  # published by the relay
    notifier = stage.start_notifier()
    await wait_for(stage.fast_url, 2 * stage.args.runs, timeout_s=300)
    drained = [at for run, at in arrivals(stage.fast_url).items() if UUID(run) in backlog]
    span = max(drained) - min(drained)
    rate = len(drained) / span
    print(f"drained by a fresh notifier: {len(drained)} fast deliveries in {span:.2f} s = {rate:.0f}/s")
    print(f"notifier peak RSS {peak_rss_mb(notifier):.0f} MB")


async def bench(args: argparse.Namespace, seeded: Seeded) -> None:
    key = Fernet.generate_key().decode()
    settings = Settings(
        database_url=SecretStr(seeded.database_url),
        webhook_secret_keys=SecretStr(key),
        webhook_allow_private=True,
        max_inflight_runs_per_company=1_000_000,
    )
    fast_port, slow_port = free_port(), free_port()
    receivers = multiprocessing.Process(
        target=serve_receivers, args=(fast_port, slow_port, args.slow_s), daemon=True
    )
    receivers.start()
    env = {
        "AGENT_EVAL_DATABASE_URL": seeded.database_url,
        "AGENT_EVAL_TOPIC_PREFIX": f"bench-{uuid.uuid4().hex[:6]}.",
        "AGENT_EVAL_WEBHOOK_SECRET_KEYS": key,
        "AGENT_EVAL_WEBHOOK_ALLOW_PRIVATE": "true",
        "AGENT_EVAL_LOG_LEVEL": "warning",
        "AGENT_EVAL_MAX_INFLIGHT_RUNS_PER_COMPANY": "1000000",
    }
    processes = Processes(env, Path(tempfile.mkdtemp(prefix="bench-webhooks-")))
    pool = await create_pool(seeded.database_url, min_size=2, max_size=20)
    fast_url, slow_url = f"http://127.0.0.1:{fast_port}", f"http://127.0.0.1:{slow_port}"
    try:
        await asyncio.to_thread(wait_ready, f"{fast_url}/stats")
        async with serving(create_app(settings, pool=pool), "127.0.0.1", 0) as api:
            for url in (fast_url, slow_url):
                await asyncio.to_thread(http, "POST", f"{api}/webhooks", seeded.key, {"url": f"{url}/"})
            case_id = await asyncio.to_thread(make_case, api, seeded.key)
        processes.run("kafka", "init")
        processes.start("relay", "relay", env={"AGENT_EVAL_HEALTH_PORT": str(free_port())})
        stage = Stage(
            args, pool, settings, processes, UUID(seeded.company_id), case_id, fast_url, slow_url, free_port()
        )
        await latency_phase(stage)
        await drain_phase(stage)
    finally:
        processes.stop_all()
        receivers.terminate()
        await pool.close()


async def stage_times(pool: Pool, fast_url: str) -> dict[str, list[float]]:
    """Where the time goes, per fast delivery: the event's commit to its delivery row (relay,
    Kafka, fan-out), and the row to the attempt's end (claim, POST, record)."""
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT (o.payload->>'time')::timestamptz AS event_at, d.created_at, d.last_attempt_at"
            " FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
            " JOIN outbox o ON o.event_id = d.event_id WHERE e.url = $1 AND d.status = 'succeeded'",
            f"{fast_url}/",
        )
    return {
        "event -> delivery row": [(r["created_at"] - r["event_at"]).total_seconds() * 1000 for r in rows],
        "delivery row -> attempted": [
            (r["last_attempt_at"] - r["created_at"]).total_seconds() * 1000 for r in rows
        ],
    }


def make_case(api: str, key: str) -> UUID:
    """A scripted case (it never runs here: only its runs' ends are delivered)."""
    agent = {"model": "scripted", "system_prompt": "You help.", "rules": [{"when": "hi", "say": "Hello."}]}
    persona = {"identity_prompt": "You greet.", "model": "scripted", "script": ["hi"]}
    case = {"scenario": "A greeting.", "success_criteria": []}
    return UUID(create_case(api, key, agent=agent, persona=persona, case=case))


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(
    args: argparse.Namespace,
    committed: dict[str, float],
    receivers: tuple[dict[str, float], dict[str, float]],
    *,
    stages: dict[str, list[float]],
    rss_mb: float,
    cpu_s: float,
) -> None:
    fast, slow = receivers
    latencies = [(fast[r] - t) * 1000 for r, t in committed.items() if r in fast]
    first, last = min(committed.values()), max(fast.values(), default=0.0)
    elapsed = max(last - first, 1e-9)
    per_delivery_ms = cpu_s / max(len(latencies), 1) * 1000
    lines = [
        f"run.done events:           {len(committed)} at a target {args.rate:.0f}/s",
        f"fast receiver deliveries:  {len(latencies)} in {elapsed:.2f} s = {len(latencies) / elapsed:.0f}/s",
        f"commit -> receipt (fast):  p50 {percentile(latencies, 0.5):.1f} ms,"
        f" p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies, default=0):.1f} ms",
        *(
            f"  {name:<24} p50 {percentile(ms, 0.5):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms"
            for name, ms in stages.items()
        ),
        f"slow receiver ({args.slow_s:g} s per answer): {len(slow)} received meanwhile",
        f"notifier: peak RSS {rss_mb:.0f} MB, CPU {cpu_s:.1f} s ({per_delivery_ms:.2f} ms per fast delivery)",
    ]
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=600.0, help="run.done events per second")
    parser.add_argument("--slow-s", type=float, default=2.0, help="the slow receiver's answer time")
    parser.add_argument(
        "--fast-database",
        action="store_true",
        help="use the test server (durability off) instead of a durable PostgreSQL of its own",
    )
    args = parser.parse_args()
    with bench_database_server(not args.fast_database) as server_url:
        if not server_url or not os.environ.get("AGENT_EVAL_KAFKA_BOOTSTRAP"):
            print("run `scripts/services up` and `source .services/env` first (Kafka)")
            sys.exit(2)

        async def run() -> None:
            seeded = await seed(server_url, credits_cents=10_000_000)
            try:
                await bench(args, seeded)
            finally:
                await drop(server_url, seeded.database)

        asyncio.run(run())


if __name__ == "__main__":
    main()
