"""A suite run at scale: a 50-case suite x 5 iterations (250 ten-turn runs of the `scripted`
model) with parallelism 16, on the full stack (gateway, relay, executor, scorer and biller
processes on Kafka and PostgreSQL, started by `scripts/services up`) and on `agent-eval dev`.

    source .services/env && .venv/bin/python -m bench.suites [--cases 50] [--iterations 5] [--only full|dev]

The full stack gets a PostgreSQL of its own with production settings (durable commits;
`--fast-database` uses the test server instead); `agent-eval dev`'s embedded PostgreSQL is
durable too. Prints, for each stack, the wall time from the trigger (POST …/run) to `suite_run.done` on the
suite run's SSE stream, and from starting `agent-eval test suite` to its exit (the CLI starts the
run, follows it, fetches the failure details and writes JUnit). Not a test: nothing here asserts
a number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from bench.pipeline_stack import Stack
from bench.stack import AGENT_EVAL, Processes, bench_database_server, http, wait_ready
from schemas.suite_runs import SuiteRunTrigger
from service.client.api import Api
from service.domain.apikeys import SCOPES
from service.local.pgserver import free_port

LINES = 5  # persona lines: with the agent's replies, ten turns


@dataclass(frozen=True)
class Server:
    base: str
    key: str


def make_suite(server: Server, cases: int) -> str:
    """A suite of `cases` ten-turn scripted cases of one agent and persona (all pass)."""

    def post(path: str, body: dict[str, object]) -> str:
        return str(http("POST", f"{server.base}{path}", server.key, body)["id"])

    agent = post(
        "/agents",
        {
            "name": "Bench agent",
            "system_prompt": "You answer questions briefly.",
            "model": "scripted",
            "agent_speaks_first": False,
            "rules": [{"when": "question", "say": "Here is a short answer to your question."}],
        },
    )
    script = [f"Question number {i}, please answer it." for i in range(1, LINES + 1)]
    persona = post(
        "/agent-eval/personas",
        {"name": "Asker", "identity_prompt": "You ask questions.", "model": "scripted", "script": script},
    )
    suite = post("/agent-eval/suites", {"name": "Bench suite", "parallelism": 16})
    for number in range(1, cases + 1):
        post(
            "/agent-eval/cases",
            {
                "name": f"Case {number}",
                "scenario": "The caller asks five questions.",
                "agent_id": agent,
                "persona_id": persona,
                "suite_id": suite,
                "max_turns": 2 * LINES,
                "success_criteria": [{"type": "must_say", "pattern": "short answer"}],
            },
        )
    return suite


async def to_done(server: Server, suite_id: str, iterations: int) -> tuple[float, int]:
    """Seconds from the trigger to `suite_run.done` on the stream, and the runs that passed."""
    api = Api(server.base, server.key)
    try:
        started = time.monotonic()
        run = await api.run_suite(UUID(suite_id), SuiteRunTrigger(iterations=iterations))
        async for event, _ in api.follow_suite_run(UUID(suite_id), run.suite_run_id):
            if event == "suite_run.done":
                break
        elapsed = time.monotonic() - started
        view = await api.suite_run(UUID(suite_id), run.suite_run_id)
    finally:
        await api.close()
    return elapsed, view.passed


def cli_wall(server: Server, suite_id: str, iterations: int, junit: Path) -> tuple[float, int]:
    """Seconds from starting `agent-eval test suite` to its exit, and its exit code."""
    env = {
        "AGENT_EVAL_URL": server.base,
        "AGENT_EVAL_API_KEY": server.key,
        "PATH": str(Path(AGENT_EVAL).parent),
    }
    started = time.monotonic()
    done = subprocess.run(
        [AGENT_EVAL, "test", "suite", suite_id, "--iterations", str(iterations), "--junit", str(junit)],
        env=env,
        capture_output=True,
        check=False,
        timeout=600,
    )
    elapsed = time.monotonic() - started
    if done.returncode not in (0, 1):  # neither passed nor failed: show why
        print((done.stdout + done.stderr).decode(errors="replace")[-2000:], file=sys.stderr)
    return elapsed, done.returncode


def measure(name: str, server: Server, args: argparse.Namespace, logs: Path) -> None:
    suite_id = make_suite(server, args.cases)
    asyncio.run(to_done(server, suite_id, 1))  # warm-up: every process has played a run
    runs = args.cases * args.iterations
    done_s, passed = asyncio.run(to_done(server, suite_id, args.iterations))
    cli_s, code = cli_wall(server, suite_id, args.iterations, logs / f"{name}.xml")
    print(f"{name}: {args.cases} cases x {args.iterations} iterations = {runs} ten-turn runs, parallelism 16")
    print(f"  trigger → suite_run.done   {done_s:6.2f} s   ({runs / done_s:,.0f} runs/s, {passed} passed)")
    print(f"  agent-eval test → exit     {cli_s:6.2f} s   (exit code {code})")


def full_stack(args: argparse.Namespace, server_url: str, bootstrap: str, logs: Path) -> None:
    stack = Stack(server_url, bootstrap, logs, {})
    try:
        stack.start(executors=args.executors, scorers=1, billers=1)
        measure("full stack", Server(stack.base, stack.seeded.key), args, logs)
    finally:
        stack.close()


@contextlib.contextmanager
def dev_server(logs: Path) -> Iterator[Server]:
    """`agent-eval dev` on a fresh data directory; its base URL and the key it printed."""
    port = free_port()
    admin_token = secrets.token_urlsafe(24)
    env = {
        "AGENT_EVAL_DATABASE_URL": "",
        "AGENT_EVAL_KAFKA_BOOTSTRAP": "",
        "AGENT_EVAL_ADMIN_TOKEN": admin_token,
    }
    processes = Processes(env, logs)
    with tempfile.TemporaryDirectory(prefix="agent-eval-dev-") as data_dir:
        processes.start("dev", "dev", "--port", str(port), "--data-dir", data_dir)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(f"{base}/readyz", timeout_s=120)
            yield Server(base, unlimited_key(base, admin_token))
        finally:
            processes.stop_all()


def unlimited_key(base: str, admin_token: str) -> str:
    """A company with ample credits and a key without a real rate limit (the printed dev key
    allows 60 requests a minute, which building a 50-case suite alone nearly spends)."""
    company = http("POST", f"{base}/admin/companies", admin_token, {"name": "Bench", "credits_cents": 10**9})
    issued = http(
        "POST",
        f"{base}/admin/companies/{company['id']}/api-keys",
        admin_token,
        {"name": "bench", "scopes": list(SCOPES), "rate_limit_per_minute": 1_000_000},
    )
    return str(issued["key"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--executors", type=int, default=1, help="executor processes on the full stack")
    parser.add_argument("--only", choices=("full", "dev"), default=None)
    parser.add_argument(
        "--fast-database",
        action="store_true",
        help="use the test server (durability off) instead of a durable PostgreSQL of its own",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-suites-") as folder:
        logs = Path(folder)
        if args.only in (None, "full"):
            bootstrap = os.environ.get("AGENT_EVAL_KAFKA_BOOTSTRAP", "")
            with bench_database_server(not args.fast_database) as server_url:
                if server_url is None or not bootstrap:
                    print("the full stack needs `scripts/services up` and `source .services/env` (for Kafka)")
                    return 2
                full_stack(args, server_url, bootstrap, logs)
        if args.only in (None, "dev"):
            with dev_server(logs) as server:
                measure("agent-eval dev", server, args, logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
