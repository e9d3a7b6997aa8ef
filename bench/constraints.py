"""What CHECK constraints cost each statement that writes `eval_runs` (issue 16's database share).

PostgreSQL re-reads and re-plans every CHECK constraint of a table from its stored text for each
statement that writes a row (`ExecRelCheck`: `stringToNode` and `ExecPrepareExpr` per constraint,
prepared statements included), and checks them all, whatever columns the statement sets. A
domain's constraint is parsed once per backend (the type cache) and checked only for the columns
a statement assigns, which is why migration 0016 made the single-column CHECKs of `eval_runs`
and `eval_run_turns` domains. This probe copies `eval_runs` (columns, defaults, indexes) three
times — every rule a table CHECK (the schema before 0016), the schema as migrated, no checks at
all — and measures the server backend's CPU per single-row UPDATE (a claim's columns) and per
INSERT.

    source .services/env && .venv/bin/python -m bench.constraints [--statements 5000] [--durable]

The backend's CPU is read from `/proc`, so the server must run on this machine (the test server
of `scripts/services`, or `--durable`'s own). Each statement commits on its own with
`synchronous_commit = off`: the figure is CPU, not the wait for the disk. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from uuid import UUID, uuid4

import asyncpg

from bench.stack import bench_database_server, cpu_seconds, create_database, drop

VARIANTS = ("before 0016: all table CHECKs", "as migrated", "none")
CLAIM = (
    "UPDATE probe SET status = $1, queue_status = $2, claimed_by = $3, lease_expires_at = now(), "
    "attempt = attempt + 1, updated_at = now() WHERE id = $4"
)
INSERT = "INSERT INTO probe (id, company_id, config) VALUES ($1, $2, '{}')"
_TABLE_CHECKS = """
SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
WHERE conrelid = 'eval_runs'::regclass AND contype = 'c' ORDER BY conname
"""
_DOMAIN_COLUMNS = """
SELECT a.attname, format_type(t.typbasetype, t.typtypmod) AS base_type,
       coalesce(array_agg(pg_get_constraintdef(c.oid)) FILTER (WHERE c.oid IS NOT NULL), '{}') AS checks
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid AND t.typtype = 'd'
LEFT JOIN pg_constraint c ON c.contypid = t.oid AND c.contype = 'c'
WHERE a.attrelid = 'eval_runs'::regclass AND a.attnum > 0 AND NOT a.attisdropped
GROUP BY a.attname, t.typbasetype, t.typtypmod ORDER BY a.attname
"""


@dataclass(frozen=True)
class DomainColumn:
    column: str
    base_type: str
    checks: tuple[str, ...]  # the domain's, on VALUE


@dataclass(frozen=True)
class Schema:
    table_checks: tuple[tuple[str, str], ...]  # (name, CHECK (...))
    domain_columns: tuple[DomainColumn, ...]


@dataclass(frozen=True)
class Figure:
    variant: str
    table_checks: int
    domains: int
    update_us: float
    insert_us: float


def as_table_check(column: str, domain_check: str) -> str:
    """A domain's check written for one column (`CHECK ((VALUE >= 0))` → `CHECK (("attempt" >= 0))`)."""
    return re.sub(r"\bVALUE\b", f'"{column}"', domain_check)


async def read_schema(conn: asyncpg.Connection) -> Schema:
    checks = tuple((row["conname"], row["definition"]) for row in await conn.fetch(_TABLE_CHECKS))
    columns = tuple(
        DomainColumn(row["attname"], row["base_type"], tuple(row["checks"]))
        for row in await conn.fetch(_DOMAIN_COLUMNS)
    )
    return Schema(checks, columns)


async def build_probe(conn: asyncpg.Connection, schema: Schema, variant: str) -> tuple[int, int]:
    """A fresh `probe` table shaped like `eval_runs` (columns, defaults, indexes) with the
    variant's constraints; (table checks, columns of a checked domain)."""
    await conn.execute("DROP TABLE IF EXISTS probe")
    await conn.execute("CREATE TABLE probe (LIKE eval_runs INCLUDING DEFAULTS INCLUDING INDEXES)")
    if variant == "as migrated":
        checks = list(schema.table_checks)
        domains = sum(1 for c in schema.domain_columns if c.checks)
    else:  # the domains' columns back on their base types
        for column in schema.domain_columns:
            await conn.execute(f'ALTER TABLE probe ALTER COLUMN "{column.column}" TYPE {column.base_type}')
        from_domains = [
            (f"probe_{c.column}_{i}", as_table_check(c.column, check))
            for c in schema.domain_columns
            for i, check in enumerate(c.checks)
        ]
        checks = [*schema.table_checks, *from_domains] if variant != "none" else []
        domains = 0
    for name, definition in checks:
        await conn.execute(f'ALTER TABLE probe ADD CONSTRAINT "{name}" {definition}')
    return len(checks), domains


async def cpu_per_call_us(pid: int, calls: int, call: Callable[[], Awaitable[object]]) -> float:
    for _ in range(min(200, calls)):  # warm: plans cached, pages in memory
        await call()
    before = cpu_seconds(pid)
    for _ in range(calls):
        await call()
    return 1e6 * (cpu_seconds(pid) - before) / calls


async def measure(conn: asyncpg.Connection, schema: Schema, variant: str, calls: int) -> Figure:
    table_checks, domains = await build_probe(conn, schema, variant)
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
            schema = await read_schema(conn)
            figures = [await measure(conn, schema, v, calls) for _ in range(rounds) for v in VARIANTS]
        finally:
            await conn.close()
    finally:
        await drop(server_url, name)
    return [lowest([f for f in figures if f.variant == v]) for v in VARIANTS]


def lowest(figures: list[Figure]) -> Figure:
    """A variant's least CPU per UPDATE and per INSERT over its rounds (noise only adds)."""
    return replace(
        figures[0], update_us=min(f.update_us for f in figures), insert_us=min(f.insert_us for f in figures)
    )


def report(figures: list[Figure], calls: int) -> None:
    print(f"constraints: backend CPU per statement on a copy of eval_runs ({calls} statements each)")
    print(f"  {'variant':30s} {'table checks':>12s} {'domains':>8s} {'UPDATE':>10s} {'INSERT':>10s}")
    for f in figures:
        print(
            f"  {f.variant:30s} {f.table_checks:12d} {f.domains:8d} "
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
