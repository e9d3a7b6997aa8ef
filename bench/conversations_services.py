"""What the conversations benchmark (`bench.conversations`) runs against, every part its own: the
model server (`bench.model_server`, its own process), and either the full stack — a PostgreSQL
server in a temporary directory (durable unless `--fast-database`), a Kafka broker
(`scripts/localkafka.py`), the gateway, relay, executor(s), scorer, biller and notifier as processes — or
`agent-eval dev` on a data directory of its own (its embedded PostgreSQL is durable). Each comes
with its process groups for the CPU accounting (`bench.conversations_cpu`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from bench import statements
from bench.chaos import durability_settings
from bench.chaos_services import Broker, Database
from bench.conversations_cpu import Groups, Roots
from bench.overload import exited, ten_turn_case
from bench.pipeline_stack import Stack
from bench.stack import (
    DURABLE_SETTINGS,
    Processes,
    Seeded,
    processes_flag,
    seed_company,
    wait_ready,
)
from service.local import pgserver
from service.local.dev import DATABASE, running_database_url
from service.local.pgserver import free_port

CREDITS_CENTS = 100_000_000
START_TIMEOUT_S = 120.0

# What each group counts as: the system measured, or the load's own parts, reported apart.
SYSTEM, APART = "system", "apart"
MODEL_SERVER = "model server"


@dataclass(frozen=True)
class Running:
    """The system under load, ready: where to send runs, what to scrape, which processes are whose."""

    base: str
    seeded: Seeded
    case_id: str
    model_url: str
    metrics: Mapping[str, str]  # process -> /metrics URL
    groups: Groups
    kinds: Mapping[str, str]  # group -> SYSTEM or APART
    durability: str
    dead: Callable[[], str | None]  # the first process that exited, or None


def say(message: str) -> None:
    print(f"conversations: {message}", flush=True)


def pids_of(processes: Processes, *names: str) -> Roots:
    return lambda: [p.pid for n, p in processes.started.items() if n in names and p.poll() is None]


def role_env(model_port: int, args: argparse.Namespace) -> dict[str, str]:
    """Every role's environment: the model server as provider `bench`, the in-flight cap, JSON
    logs, and a key to seal webhook secrets with (the notifier will not start without one)."""
    provider = {"base_url": f"http://127.0.0.1:{model_port}/v1", "timeout_s": 60}
    return {
        "AGENT_EVAL_PROVIDERS": json.dumps({"bench": provider}),
        "AGENT_EVAL_WEBHOOK_SECRET_KEYS": Fernet.generate_key().decode(),
        "AGENT_EVAL_MAX_INFLIGHT_RUNS_PER_COMPANY": str(args.max_inflight),
        "AGENT_EVAL_LOG_FORMAT": "json",
    }


def start_model(processes: Processes, port: int, latency_s: float) -> str:
    model = (sys.executable, "-m", "bench.model_server")
    processes.start("model-server", "--port", str(port), "--latency", str(latency_s), program=model)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/healthz")
    return url


def apart_groups(processes: Processes) -> dict[str, Roots]:
    """The model server and this process (the clients and the samplers), reported apart."""
    return {MODEL_SERVER: pids_of(processes, "model-server"), "bench client": lambda: [os.getpid()]}


def executor_argv(args: argparse.Namespace) -> tuple[str, ...]:
    """`consume executor`, with `--processes N` when the CLI knows the flag."""
    return ("consume", "executor", *processes_flag("--processes", args.executor_processes, "consume"))


@contextlib.contextmanager
def full_stack(args: argparse.Namespace, folder: Path, logs: Path) -> Iterator[Running]:
    """PostgreSQL, Kafka, the model server and every role as a process, ready; all stopped on the
    way out, however it is left."""
    with contextlib.ExitStack() as exits:
        settings = pgserver.TEST_SETTINGS if args.fast_database else DURABLE_SETTINGS
        settings = {**settings, **(statements.PRELOAD if args.statements else {})}
        database = Database.start(folder / "postgres", settings)
        exits.callback(database.stop)
        broker = Broker.start(folder, say)
        exits.callback(broker.stop)
        model_port = free_port()
        stack = Stack(database.url(), broker.bootstrap, logs, role_env(model_port, args))
        exits.callback(stack.close)
        model_url = start_model(stack.processes, model_port, args.model_latency)
        start_roles(stack, args)
        broker_pid = int(json.loads(broker.layout.broker_file.read_text())["pid"])
        roles = [n for n in stack.processes.started if n != "model-server"]
        groups: dict[str, Roots] = {name: pids_of(stack.processes, name) for name in roles}
        groups |= {"postgresql": lambda: [database.server.pid], "kafka": lambda: [broker_pid]}
        metrics = {"gateway": f"{stack.base}/metrics"}
        metrics |= {name: f"http://127.0.0.1:{port}/metrics" for name, port in stack.health.items()}
        yield Running(
            base=stack.base,
            seeded=stack.seeded,
            case_id=ten_turn_case(stack.base, stack.seeded.key, args.persona),
            model_url=model_url,
            metrics=metrics,
            groups=Groups({**groups, **apart_groups(stack.processes)}),
            kinds={**dict.fromkeys(groups, SYSTEM), **dict.fromkeys(apart_groups(stack.processes), APART)},
            durability=asyncio.run(durability_settings(database.url())),
            dead=lambda: exited(stack.processes, logs),
        )


def start_roles(stack: Stack, args: argparse.Namespace) -> None:
    """The gateway, the relay, `--executors` executors, a scorer, a biller and a notifier (it reads
    every run event, as in production, though the benchmark's company has no webhook endpoint);
    until all are ready."""
    stack.processes.start("gateway", "serve")
    stack.start_role("relay", "relay")
    for i in range(args.executors):
        stack.start_role(f"executor-{i + 1}", *executor_argv(args))
    stack.start_role("scorer-1", "consume", "scorer")
    stack.start_role("biller-1", "consume", "biller")
    stack.start_role("notifier-1", "consume", "notifier")
    wait_ready(f"{stack.base}/readyz", START_TIMEOUT_S)
    for port in stack.health.values():
        wait_ready(f"http://127.0.0.1:{port}/readyz", START_TIMEOUT_S)


@contextlib.contextmanager
def dev_stack(args: argparse.Namespace, folder: Path, logs: Path) -> Iterator[Running]:
    """`agent-eval dev` on a data directory under `folder` and the model server, ready; a company
    of the benchmark's own seeded in its database. Both stopped on the way out."""
    model_port, port = free_port(), free_port()
    processes = Processes(role_env(model_port, args), logs)
    with contextlib.ExitStack() as exits:
        exits.callback(processes.stop_all)
        model_url = start_model(processes, model_port, args.model_latency)
        data_dir = folder / "dev"
        extra = processes_flag("--executor-processes", args.executor_processes, "dev")
        processes.start("dev", "dev", "--port", str(port), "--data-dir", str(data_dir), *extra)
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/readyz", START_TIMEOUT_S)
        server = pgserver.read_state(data_dir / "postgres")
        url = running_database_url(data_dir)
        if server is None or url is None:
            raise RuntimeError(f"agent-eval dev runs but its PostgreSQL is not recorded under {data_dir}")
        seeded = asyncio.run(seed_company(url, DATABASE, credits_cents=CREDITS_CENTS))
        groups: dict[str, Roots] = {"dev": pids_of(processes, "dev"), "postgresql": lambda: [server.pid]}
        yield Running(
            base=base,
            seeded=seeded,
            case_id=ten_turn_case(base, seeded.key, args.persona),
            model_url=model_url,
            metrics={"dev": f"{base}/metrics"},
            groups=Groups({**groups, **apart_groups(processes)}),
            kinds={**dict.fromkeys(groups, SYSTEM), **dict.fromkeys(apart_groups(processes), APART)},
            durability=asyncio.run(durability_settings(url)),
            dead=lambda: exited(processes, logs),
        )
