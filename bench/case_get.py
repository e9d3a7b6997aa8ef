"""Throughput of `GET /agent-eval/cases/{id}` on one gateway process against real PostgreSQL.

    source .services/env && .venv/bin/python bench/case_get.py [--seconds 15] [--connections 32]

Seeds a fresh database (company, key, agent, persona, case), starts `agent-eval serve` as its own
process, and drives it from a separate load-generator process (keep-alive connections, no
think time). Every request is a full one: key lookup (cached), rate-limit count (an upsert in
PostgreSQL), the case with its agent and persona (one joined query), JSON. Prints requests/s
and latency percentiles. Not a test: nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from service import accounts
from service.db.core import create_pool
from service.db.migrate import apply_migrations
from service.domain.keys import SCOPES
from service.localpg import free_port

ROOT = Path(__file__).resolve().parent.parent


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def seed(server_url: str) -> tuple[str, str, str]:
    """A fresh, migrated database with one case; returns (database url, key, case id)."""
    name = f"agent_eval_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = with_database(server_url, name)
    conn = await asyncpg.connect(url)
    await apply_migrations(conn)
    await conn.close()
    pool = await create_pool(url, min_size=1, max_size=2)
    company = await accounts.create_company(pool, "Bench", credits_cents=10_000)
    issued = await accounts.issue_api_key(
        pool, company.id, name="bench", scopes=list(SCOPES), rate_limit_per_minute=100_000_000
    )
    await pool.close()
    return url, issued.key, name


def http(method: str, url: str, key: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 — our own server
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 — our own server
        parsed: dict[str, object] = json.loads(response.read())
        return parsed


def make_case(base: str, key: str) -> str:
    agent = http("POST", f"{base}/agents", key, {"name": "Bench agent", "system_prompt": "You help." * 20})
    persona = http(
        "POST", f"{base}/agent-eval/personas", key, {"name": "Bench caller", "identity_prompt": "You call."}
    )
    criteria = [{"type": "must_say", "pattern": f"phrase {i}"} for i in range(5)]
    case = http(
        "POST",
        f"{base}/agent-eval/cases",
        key,
        {
            "name": "Bench case",
            "agent_id": agent["id"],
            "persona_id": persona["id"],
            "scenario": "A realistic scenario paragraph. " * 5,
            "success_criteria": criteria,
        },
    )
    return str(case["id"])


def load(url: str, key: str, seconds: float, connections: int, out: multiprocessing.Queue[str]) -> None:
    """The load generator (its own process): `connections` loops, each request after the last."""

    async def run() -> dict[str, object]:
        latencies: list[float] = []
        errors = 0
        headers = {"Authorization": f"Bearer {key}"}
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            warm_until = time.monotonic() + 2.0
            stop_at = warm_until + seconds

            async def worker() -> None:
                nonlocal errors
                while (now := time.monotonic()) < stop_at:
                    started = time.perf_counter()
                    async with session.get(url) as response:
                        await response.read()
                        ok = response.status == 200
                    if now >= warm_until:
                        latencies.append(time.perf_counter() - started)
                        errors += not ok

            await asyncio.gather(*(worker() for _ in range(connections)))
        return {"requests": len(latencies), "errors": errors, "latencies": sorted(latencies)}

    result = asyncio.run(run())
    out.put(json.dumps(result))


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] * 1000 if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    server_url = os.environ.get("AGENT_EVAL_DATABASE_URL")
    if not server_url:
        print("AGENT_EVAL_DATABASE_URL is not set: run `scripts/services up` and `source .services/env`")
        return 2
    database_url, key, db_name = asyncio.run(seed(server_url))
    port = free_port()
    env = {
        **os.environ,
        "AGENT_EVAL_DATABASE_URL": database_url,
        "AGENT_EVAL_PORT": str(port),
        "AGENT_EVAL_LOG_FORMAT": "json",
    }
    agent_eval = shutil.which("agent-eval", path=str(Path(sys.executable).parent)) or "agent-eval"
    gateway = subprocess.Popen(
        [agent_eval, "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=1)  # noqa: S310 — our own server
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        case_id = make_case(base, key)
        queue: multiprocessing.Queue[str] = multiprocessing.Queue()
        worker = multiprocessing.Process(
            target=load,
            args=(f"{base}/agent-eval/cases/{case_id}", key, args.seconds, args.connections, queue),
        )
        worker.start()
        result = json.loads(queue.get(timeout=args.seconds + 60))
        worker.join()
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        gateway.wait(30)
        asyncio.run(drop(server_url, db_name))
    latencies: list[float] = result["latencies"]
    print(f"GET /agent-eval/cases/{{id}}: one gateway, {args.connections} connections, {args.seconds:.0f} s")
    print(f"  requests/s   {result['requests'] / args.seconds:,.0f}")
    print(f"  errors       {result['errors']}")
    print(f"  latency p50  {percentile(latencies, 0.50):.1f} ms")
    print(f"  latency p99  {percentile(latencies, 0.99):.1f} ms")
    print(f"  latency mean {statistics.fmean(latencies) * 1000:.1f} ms")
    return 0


async def drop(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


if __name__ == "__main__":
    sys.exit(main())
