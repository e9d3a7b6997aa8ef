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
import signal
import statistics
import subprocess
import sys
import time
from typing import TypedDict

import aiohttp

from bench.stack import AGENT_EVAL, create_case, database_server, drop, percentile, seed, wait_ready
from service.local.pgserver import free_port


class Load(TypedDict):
    """What the load generator reports: requests and errors after the warm-up, sorted latencies."""

    requests: int
    errors: int
    latencies: list[float]


def make_case(base: str, key: str) -> str:
    criteria = [{"type": "must_say", "pattern": f"phrase {i}"} for i in range(5)]
    return create_case(
        base,
        key,
        agent={"system_prompt": "You help." * 20},
        persona={"identity_prompt": "You call."},
        case={"scenario": "A realistic scenario paragraph. " * 5, "success_criteria": criteria},
        timeout_s=10,
    )


def load(url: str, key: str, seconds: float, connections: int, out: multiprocessing.Queue[str]) -> None:
    """The load generator (its own process): `connections` loops, each request after the last."""

    async def run() -> Load:
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


def measure(server_url: str, seconds: float, connections: int) -> Load:
    """Seed a database, start a gateway on it, create a case, GET it from a separate process."""
    seeded = asyncio.run(seed(server_url))
    port = free_port()
    env = {
        **os.environ,
        "AGENT_EVAL_DATABASE_URL": seeded.database_url,
        "AGENT_EVAL_PORT": str(port),
        "AGENT_EVAL_LOG_FORMAT": "json",
    }
    gateway = subprocess.Popen(
        [AGENT_EVAL, "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/readyz", timeout_s=30)
        case_id = make_case(base, seeded.key)
        queue: multiprocessing.Queue[str] = multiprocessing.Queue()
        worker = multiprocessing.Process(
            target=load, args=(f"{base}/agent-eval/cases/{case_id}", seeded.key, seconds, connections, queue)
        )
        worker.start()
        result: Load = json.loads(queue.get(timeout=seconds + 60))
        worker.join()
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        gateway.wait(30)
        asyncio.run(drop(server_url, seeded.database))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    server_url = database_server()
    if server_url is None:
        return 2
    result = measure(server_url, args.seconds, args.connections)
    latencies = result["latencies"]
    print(f"GET /agent-eval/cases/{{id}}: one gateway, {args.connections} connections, {args.seconds:.0f} s")
    print(f"  requests/s   {result['requests'] / args.seconds:,.0f}")
    print(f"  errors       {result['errors']}")
    print(f"  latency p50  {percentile(latencies, 0.50) * 1000:.1f} ms")
    print(f"  latency p99  {percentile(latencies, 0.99) * 1000:.1f} ms")
    print(f"  latency mean {statistics.fmean(latencies) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
