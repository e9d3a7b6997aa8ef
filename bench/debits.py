"""Debits per second: the biller's transaction (lock run, lock company, charge, finalise, two
events, NOTIFY) against real PostgreSQL, on one company (every debit contends for one row) and
on 1,000 companies.

    source .services/env && .venv/bin/python bench/debits.py [--runs 3000] [--concurrency 8]

Runs are created first (finished, with priced turns), then billed by `--concurrency` workers
sharing one pool, as biller replicas would. Prints debits/s for each case. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from uuid import UUID

from bench.stack import create_database, database_server, drop
from consumers.biller import bill_run
from service.accounts import tenants
from service.core.ids import new_id
from service.core.logging import configure_logging
from service.db import ledger
from service.db.postgres import Pool, connection, create_pool

_INSERT_RUNS = """
INSERT INTO eval_runs (id, company_id, config, released_at, status, queue_status, termination_reason,
                       claimed_by, attempt, lease_expires_at, started_at, ended_at)
SELECT id, company, '{}'::jsonb, now(), 'failed', 'claimed', 'error', 'bench', 1, now() + interval '1 hour',
       now(), now()
FROM unnest($1::uuid[], $2::uuid[]) AS t(id, company)
"""
_INSERT_TURNS = """
INSERT INTO eval_run_turns (id, run_id, turn_number, role, text, input_tokens, output_tokens, cost_microcents)
SELECT gen_random_uuid(), id, n, CASE WHEN n % 2 = 1 THEN 'persona' ELSE 'agent' END, 'turn', 100, 50,
       1234567 * n
FROM unnest($1::uuid[]) AS id, generate_series(1, 4) AS n
"""


async def prepare(pool: Pool, companies: int, runs: int) -> list[UUID]:
    owners = [
        (await tenants.create_company(pool, f"Bench {i}", credits_cents=10_000_000)).id
        for i in range(companies)
    ]
    run_ids = [new_id() for _ in range(runs)]
    async with connection(pool) as conn:
        await conn.execute(_INSERT_RUNS, run_ids, [owners[i % companies] for i in range(runs)])
        await conn.execute(_INSERT_TURNS, run_ids)
    return run_ids


async def bill_all(pool: Pool, run_ids: list[UUID], concurrency: int) -> float:
    queue: asyncio.Queue[UUID] = asyncio.Queue()
    for run_id in run_ids:
        queue.put_nowait(run_id)

    async def worker() -> None:
        while not queue.empty():
            await bill_run(pool, queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def measure(server_url: str, companies: int, runs: int, concurrency: int) -> None:
    database_url, name = await create_database(server_url)
    try:
        pool = await create_pool(database_url, min_size=concurrency, max_size=concurrency)
        try:
            run_ids = await prepare(pool, companies, runs)
            elapsed = await bill_all(pool, run_ids, concurrency)
            async with connection(pool) as check:
                assert await ledger.reconcile(check) == []
                charges = await check.fetchval(
                    "SELECT count(*) FROM credit_ledger WHERE kind = 'eval_run_charge'"
                )
            assert charges == runs, f"{charges} charges for {runs} runs"
        finally:
            await pool.close()
    finally:
        await drop(server_url, name)
    print(
        f"  {companies:>5} compan{'y' if companies == 1 else 'ies'}: {runs / elapsed:8,.0f} debits/s "
        f"({runs} runs in {elapsed:.2f} s, {concurrency} concurrent billers)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    server_url = database_server()
    if server_url is None:
        return 2
    configure_logging("warning")
    print("Biller debit transactions (each: run + company locks, charge, finalise, 2 events, NOTIFY):")
    for companies in (1, 1000):
        asyncio.run(measure(server_url, companies, args.runs, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
