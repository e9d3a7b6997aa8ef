"""What CHECK constraints cost each statement that writes `eval_runs` (issue 16's database share).

PostgreSQL re-reads and re-plans every CHECK constraint of a table from its stored text for each
statement that writes a row (`ExecRelCheck`: `stringToNode` and `ExecPrepareExpr` per constraint,
prepared statements included), and checks them all, whatever columns the statement sets. A
domain's constraint is parsed once per backend (the type cache) and checked only for the columns
a statement assigns. This probe copies `eval_runs` (columns, defaults, indexes) four times —
constraints as migrated, single-column ones as domains, only the multi-column ones, none — and
measures the server backend's CPU per single-row UPDATE (a claim's columns) and per INSERT.

    source .services/env && .venv/bin/python -m bench.constraints [--statements 5000] [--durable]

The backend's CPU is read from `/proc`, so the server must run on this machine (the test server
of `scripts/services`, or `--durable`'s own). Each statement commits on its own with
`synchronous_commit = off`: the figure is CPU, not the wait for the disk. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg

from bench.stack import bench_database_server, create_database, drop

VARIANTS = ("as migrated", "single-column as domains", "multi-column only", "none")
CLAIM = (
    "UPDATE probe SET status = $1, queue_status = $2, claimed_by = $3, lease_expires_at = now(), "
    "attempt = attempt + 1, updated_at = now() WHERE id = $4"
)
INSERT = "INSERT INTO probe (id, company_id, config) VALUES ($1, $2, '{}')"
_CONSTRAINTS = """
SELECT c.conname, pg_get_constraintdef(c.oid) AS definition, cardinality(c.conkey) AS columns,
       a.attname, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
WHERE c.conrelid = 'eval_runs'::regclass AND c.contype = 'c' ORDER BY c.conname
"""


@dataclass(frozen=True)
class Check:
    name: str
    definition: str  # CHECK (...)
    single: bool  # it names one column
    column: str
    type: str


@dataclass(frozen=True)
class Figure:
    variant: str
    table_checks: int
    domains: int
    update_us: float
    insert_us: float


def backend_cpu_s(pid: int) -> float:
    """User plus system CPU of a process on this machine (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def as_domain_check(check: Check) -> str:
    """The constraint with its column written as VALUE (`CHECK ((attempt >= 0))` → `CHECK ((VALUE >= 0))`)."""
    definition = check.definition.replace(f'"{check.column}"', check.column)
    return re.sub(rf"\b{re.escape(check.column)}\b", "VALUE", definition)


async def read_checks(conn: asyncpg.Connection) -> list[Check]:
    return [
        Check(row["conname"], row["definition"], row["columns"] == 1, row["attname"], row["type"])
        for row in await conn.fetch(_CONSTRAINTS)
    ]


async def build_probe(conn: asyncpg.Connection, checks: list[Check], variant: str) -> tuple[int, int]:
    """A fresh `probe` table shaped like `eval_runs` with the variant's constraints; (table
    checks, domains)."""
    await conn.execute("DROP TABLE IF EXISTS probe")
    await conn.execute("CREATE TABLE probe (LIKE eval_runs INCLUDING DEFAULTS INCLUDING INDEXES)")
    table = [c for c in checks if variant == "as migrated" or not c.single]
    if variant == "none":
        table = []
    domains = [c for c in checks if c.single] if variant == "single-column as domains" else []
    for check in table:
        await conn.execute(f'ALTER TABLE probe ADD CONSTRAINT "{check.name}" {check.definition}')
    for index, check in enumerate(domains):
        domain = f"probe_domain_{index}"
        await conn.execute(f"DROP DOMAIN IF EXISTS {domain} CASCADE")
        await conn.execute(f"CREATE DOMAIN {domain} AS {check.type} {as_domain_check(check)}")
        await conn.execute(f'ALTER TABLE probe ALTER COLUMN "{check.column}" TYPE {domain}')
    return len(table), len(domains)


async def cpu_per_call_us(pid: int, calls: int, call: Callable[[], Awaitable[object]]) -> float:
    for _ in range(min(200, calls)):  # warm: plans cached, pages in memory
        await call()
    before = backend_cpu_s(pid)
    for _ in range(calls):
        await call()
    return 1e6 * (backend_cpu_s(pid) - before) / calls


async def measure(conn: asyncpg.Connection, checks: list[Check], variant: str, calls: int) -> Figure:
    table_checks, domains = await build_probe(conn, checks, variant)
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    insert = await conn.prepare(INSERT)
    claim = await conn.prepare(CLAIM)
    run_id: UUID = uuid4()
    await insert.fetch(run_id, uuid4())
    update_us = await cpu_per_call_us(pid, calls, lambda: claim.fetch("running", "claimed", "probe", run_id))
    await conn.execute("VACUUM probe")
    insert_us = await cpu_per_call_us(pid, calls, lambda: insert.fetch(uuid4(), uuid4()))
    return Figure(variant, table_checks, domains, update_us, insert_us)


async def probe(server_url: str, calls: int, rounds: int) -> list[Figure]:
    """Each variant `rounds` times, interleaved (the machine's speed drifts); the lowest of each."""
    url, name = await create_database(server_url)  # migrated; dropped below
    try:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SET synchronous_commit = off")
            checks = await read_checks(conn)
            figures = [await measure(conn, checks, v, calls) for _ in range(rounds) for v in VARIANTS]
        finally:
            await conn.close()
    finally:
        await drop(server_url, name)
    return [lowest([f for f in figures if f.variant == v]) for v in VARIANTS]


def lowest(figures: list[Figure]) -> Figure:
    """A variant's least CPU per UPDATE and per INSERT over its rounds (noise only adds)."""
    first = figures[0]
    return Figure(
        first.variant,
        first.table_checks,
        first.domains,
        min(f.update_us for f in figures),
        min(f.insert_us for f in figures),
    )


def report(figures: list[Figure], calls: int) -> None:
    print(f"constraints: backend CPU per statement on a copy of eval_runs ({calls} statements each)")
    print(f"  {'variant':26s} {'table checks':>12s} {'domains':>8s} {'UPDATE':>10s} {'INSERT':>10s}")
    for f in figures:
        print(
            f"  {f.variant:26s} {f.table_checks:12d} {f.domains:8d} "
            f"{f.update_us:8.0f} µs {f.insert_us:8.0f} µs"
        )
    print(json.dumps({"bench": "constraints", "statements": calls, "figures": [f.__dict__ for f in figures]}))


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.constraints", description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=5000, help="statements measured per variant")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per variant (the lowest counts)")
    parser.add_argument("--durable", action="store_true", help="a server of its own, production settings")
    args = parser.parse_args()
    started = time.monotonic()
    with bench_database_server(args.durable) as server_url:
        if server_url is None:
            return 2
        report(asyncio.run(probe(server_url, args.statements, args.rounds)), args.statements)
    print(f"  total time {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
