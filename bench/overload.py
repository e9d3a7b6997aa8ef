"""The system under more load than it can run at once, as issue 15 measured it: the full stack as
separate processes (gateway, relay, executors, scorer, biller on Kafka and PostgreSQL, from
`scripts/services up`), the agent's and the persona's model served over HTTP by
`bench.model_server` (OpenAI chat completions, answering after `--model-latency`), and
`--runs` ten-turn runs offered `--offered` at a time (each client: a blocking POST with
`Prefer: wait=60`, then polling until done, then the next run).

    source .services/env && .venv/bin/python -m bench.overload [--runs 2000] [--offered 500]
        [--model-latency 0.2] [--executors 1] [--persona model|scripted]

It prints runs/s, trigger→done p50/p99/max (client and database) with the slowest run's stages,
statuses, model calls per run (counted by the model server; ten per run with a model persona,
five with a scripted one), claims, duplicate turns (SQL), `lease_lost` lines in the executor
logs, run-request records per run (outbox), re-dispatches (`agent_eval_runs_redispatched_total`),
connection errors seen by the clients, the highest oldest-pending age, saturation and waiters,
readiness answers other than 200, and each process's CPU and peak RSS. A figure the build does
not report prints "n/a". Not a test: nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.burst import allow_open_files, listen_drops
from bench.overload_figures import Sampler, Stored, logged_events, stored
from bench.overload_load import Aborted, Driven, offer
from bench.pipeline_stack import Stack
from bench.stack import Processes, create_case, machine_cpu, percentile, wait_ready
from service.local.pgserver import free_port

LINES = 5
QUESTIONS = [f"Question number {i}, please answer it." for i in range(1, LINES + 1)]


def model_calls(url: str) -> int:
    with urllib.request.urlopen(f"{url}/stats", timeout=5) as response:  # noqa: S310 — ours
        calls: int = json.loads(response.read())["calls"]
        return calls


def make_case(stack: Stack, persona: str) -> str:
    return ten_turn_case(stack.base, stack.seeded.key, persona)


def ten_turn_case(base: str, key: str, persona: str) -> str:
    """A ten-turn case: the caller speaks first, the agent answers on the model server (models
    `bench:agent` and `bench:persona`: the provider `bench` must point at it), and the caller
    asks on the model server too (`model`) or from a script (`scripted`)."""
    agent = {"system_prompt": "You answer questions.", "model": "bench:agent", "agent_speaks_first": False}
    caller: dict[str, object] = {"identity_prompt": "You ask questions.", "model": "bench:persona"}
    if persona == "scripted":
        caller = {**caller, "model": "scripted", "script": QUESTIONS}
    case = {
        "scenario": "The caller asks questions.",
        "max_turns": 2 * LINES,
        "success_criteria": [{"type": "must_say", "pattern": "short answer"}],
    }
    return create_case(base, key, agent=agent, persona=caller, case=case)


@dataclass(frozen=True)
class Measured:
    """Everything one load measured: the clients' view, the database's, the logs', the sampled
    metrics', and each process's CPU seconds and peak RSS."""

    driven: Driven
    wall_s: float
    calls: int
    db: Stored
    executor_events: Counter[str]
    executor_lines: int
    sampler: Sampler
    cpu_s: dict[str, float]
    peak_mb: dict[str, float]
    kernel: dict[str, int]


def start(args: argparse.Namespace, server_url: str, bootstrap: str, logs: Path) -> tuple[Stack, str]:
    model_port = free_port()
    provider = {"base_url": f"http://127.0.0.1:{model_port}/v1", "timeout_s": 60}
    stack = Stack(server_url, bootstrap, logs, {"AGENT_EVAL_PROVIDERS": json.dumps({"bench": provider})})
    model = (sys.executable, "-m", "bench.model_server")
    stack.processes.start(
        "model-server", "--port", str(model_port), "--latency", str(args.model_latency), program=model
    )
    model_url = f"http://127.0.0.1:{model_port}"
    try:
        wait_ready(f"{model_url}/healthz")
        stack.start(executors=args.executors, scorers=1, billers=1)
    except BaseException:
        stack.close()
        raise
    return stack, model_url


def measure(stack: Stack, args: argparse.Namespace, model_url: str, logs: Path) -> Measured:
    case_id = make_case(stack, args.persona)
    metrics = {"gateway": f"{stack.base}/metrics"}
    metrics.update({name: f"http://127.0.0.1:{port}/metrics" for name, port in stack.health.items()})
    ready = {name: url.replace("/metrics", "/readyz") for name, url in metrics.items()}
    ports = {stack.port: "gateway", urlsplit(model_url).port or 0: "model-server"}
    ports.update({port: f"{name} health" for name, port in stack.health.items()})
    sampler = Sampler(metrics, ready, ports)
    calls_before, kernel_before = model_calls(model_url), listen_drops()
    cpu_before = {**stack.processes.cpu_seconds(), **machine_cpu()}
    sampler.start()
    started = time.monotonic()
    try:
        dead = functools.partial(exited, stack.processes, logs)
        driven = asyncio.run(offer(stack.base, stack.seeded.key, case_id, args, dead))
    finally:
        sampler.stop()
    wall = time.monotonic() - started
    cpu = {
        k: v - cpu_before.get(k, 0.0) for k, v in {**stack.processes.cpu_seconds(), **machine_cpu()}.items()
    }
    events, lines = logged_events(logs, "executor")
    return Measured(
        driven=driven,
        wall_s=wall,
        calls=model_calls(model_url) - calls_before,
        db=asyncio.run(stored(stack.seeded.database_url, stack.seeded.company_id)),
        executor_events=events,
        executor_lines=lines,
        sampler=sampler,
        cpu_s=cpu,
        peak_mb=stack.processes.peak_rss_mb(),
        kernel={k: v - kernel_before.get(k, 0) for k, v in listen_drops().items()},
    )


def exited(processes: Processes, logs: Path) -> str | None:
    """The first of the processes that is no longer running, with its exit code and log."""
    for name, process in processes.started.items():
        if (code := process.poll()) is not None:
            return f"{name} exited with {code}; its log: {logs / (name + '.log')}"
    return None


def ms(seconds: list[float]) -> str:
    if not seconds:
        return "n/a"
    p50, p99, top = percentile(seconds, 0.5), percentile(seconds, 0.99), max(seconds)
    return f"p50 {p50 * 1000:,.0f} ms   p99 {p99 * 1000:,.0f} ms   max {top * 1000:,.0f} ms"


def shown(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.1f}{unit}"


def report(args: argparse.Namespace, m: Measured) -> None:
    done = len(m.driven.seconds)
    print(
        f"overload: {args.runs} ten-turn runs offered {args.offered} at a time, model answering in "
        f"{args.model_latency:g} s ({args.persona} persona), {args.executors} executor(s)"
    )
    print(f"  runs/s              {done / m.wall_s:,.1f}   ({done} done in {m.wall_s:,.1f} s)")
    print(f"  trigger→done        {ms(m.driven.seconds)}   (clients)")
    print(f"  trigger→done (db)   {ms(m.db.seconds('trigger_to_done'))}")
    report_slowest(m.db)
    print(f"  statuses            {m.db.statuses()}")
    report_work(args, m, done)
    report_metrics(m.sampler)
    print(f"  client errors       {dict(m.driven.errors) or 0}")
    kernel = ", ".join(f"{k} +{v}" for k, v in m.kernel.items()) or "n/a"
    print(f"  kernel              {kernel} (SYNs dropped by full listen queues, machine-wide)")
    report_processes(m, done)


def report_work(args: argparse.Namespace, m: Measured, done: int) -> None:
    """Work done once or more than once: model calls, turns, claims, run-request records."""
    per_run = 2 * LINES if args.persona == "model" else LINES
    print(f"  model calls         {m.calls:,} = {m.calls / max(1, done):.2f} per run (expected {per_run})")
    print(f"  turns per run       {dict(sorted(m.db.turn_counts().items()))}")
    repeats, gaps = m.db.duplicate_turns()
    print(f"  duplicate turns     {repeats} played twice, {gaps} runs with a gap")
    claims, reclaimed = m.db.claims()
    print(f"  claims              {claims:,} for {len(m.db.runs):,} runs ({reclaimed} runs claimed again)")
    print(f"  lease_lost lines    {m.executor_events['lease_lost']}")
    requests = m.db.requests_per_run()
    extra = sum((n - 1) * count for n, count in requests.items() if n > 1)
    print(f"  run requests/run    {dict(sorted(requests.items()))}   ({extra} extra records)")
    print(f"  outbox records/run  {m.db.records_per_run():.2f}")


def report_processes(m: Measured, done: int) -> None:
    http_lines = sum(n for event, n in m.executor_events.items() if event.startswith("HTTP Request"))
    print(
        f"  executor log lines  {m.executor_lines:,} ({m.executor_lines / max(1, done):.1f} per run; "
        f"{http_lines:,} 'HTTP Request' lines)"
    )
    for name in sorted(m.cpu_s):
        label = name if name.startswith("machine") else f"{name} of a core"
        rss = f"   peak RSS {m.peak_mb[name]:,.0f} MB" if name in m.peak_mb else ""
        print(f"  {'CPU ' + label:<32} {m.cpu_s[name] / m.wall_s:>5.0%}{rss}")


def report_slowest(db: Stored) -> None:
    timed = [r for r in db.runs if r["trigger_to_done"] is not None]
    if not timed:
        return
    slowest = max(timed, key=lambda r: float(r["trigger_to_done"]))
    stages = ", ".join(
        f"{label} {float(slowest[column]):.1f} s"
        for column, label in (
            ("to_claim", "to the claim"),
            ("conversation", "conversation"),
            ("after", "to done"),
        )
        if slowest[column] is not None
    )
    print(f"  slowest run         {stages}; attempts {slowest['attempt']}")
    print(f"  to the claim        {ms(db.seconds('to_claim'))}")
    print(f"  conversation        {ms(db.seconds('conversation'))}")


def report_metrics(sampler: Sampler) -> None:
    redispatched = sampler.by_label("agent_eval_runs_redispatched_total")
    none = "n/a (no samples: none counted, or not counted by this build)"
    print(f"  re-dispatched       {redispatched or none}")
    for gauge, label in (
        ("agent_eval_queue_oldest_pending_age_seconds", "oldest pending max"),
        ("agent_eval_executor_saturation", "saturation max"),
        ("agent_eval_conversations_active", "conversations max"),
        ("agent_eval_run_waiters", "waiters max"),
        ("agent_eval_outbox_unsent", "outbox unsent max"),
    ):
        value = sampler.highest.get(gauge)
        note = "   (0 throughout: not set by this build, or never above 0)" if value == 0 else ""
        print(f"  {label:<19} {shown(value)}{note}")
    print(f"  /readyz not 200     {dict(sampler.not_ready) or 0}   (samples, one a second per process)")
    queues = ", ".join(f"{name} {q}/{limit}" for name, (q, limit) in sorted(sampler.queues.items()))
    print(f"  listen queue max    {queues or 'n/a'}   (accepted by the kernel, not yet by the process)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--offered", type=int, default=500, help="runs in flight: clients at a time")
    parser.add_argument("--model-latency", type=float, default=0.2, help="seconds per model answer")
    parser.add_argument("--executors", type=int, default=1)
    parser.add_argument("--persona", choices=("model", "scripted"), default="model")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs and say where")
    args = parser.parse_args()
    server_url = os.environ.get("AGENT_EVAL_DATABASE_URL")
    bootstrap = os.environ.get("AGENT_EVAL_KAFKA_BOOTSTRAP")
    if not server_url or not bootstrap:
        print("run `scripts/services up` and `source .services/env` first")
        return 2
    allow_open_files(4 * args.offered + 2000)
    logs = Path(tempfile.mkdtemp(prefix="agent-eval-overload-"))
    stack, model_url = start(args, server_url, bootstrap, logs)
    try:
        measured = measure(stack, args, model_url, logs)
    except Aborted as error:
        print(f"overload: aborted: {error} (logs kept in {logs})")
        return 1
    finally:
        stack.close()
    report(args, measured)
    if args.keep_logs:
        print(f"  logs                {logs}")
    else:
        shutil.rmtree(logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
