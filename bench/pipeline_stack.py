"""The services of one pipeline benchmark: a fresh database, topics under a fresh prefix, and the
gateway, relay, executor, scorer and biller processes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from bench.stack import Processes, Seeded, drop, processes_flag, seed, wait_ready
from service.local.pgserver import free_port


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

    def start(self, *, executors: int, scorers: int, billers: int, executor_processes: int = 1) -> None:
        """Each executor as `consume executor --processes executor_processes` (1: one process)."""
        self.processes.start("gateway", "serve")
        self.start_role("relay", "relay")
        flag = processes_flag("--processes", executor_processes, "consume")
        for role, count in (("executor", executors), ("scorer", scorers), ("biller", billers)):
            for i in range(count):
                self.start_role(f"{role}-{i + 1}", "consume", role, *(flag if role == "executor" else ()))
        wait_ready(f"{self.base}/readyz")
        for port in self.health.values():
            wait_ready(f"http://127.0.0.1:{port}/readyz")

    def close(self, *, keep: bool = False) -> None:
        self.processes.stop_all()
        if not keep:
            asyncio.run(drop(self.server_url, self.seeded.database))
