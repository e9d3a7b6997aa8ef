"""Where the database's work goes, per run: `pg_stat_statements` (loaded when a benchmark asks
for `--statements N`; PostgreSQL 18's views), rows written per table, the server's commits and
its WAL, read after the load and divided by the runs.

`PRELOAD` goes into the server's settings; `reset` before the load and `per_run` after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

PRELOAD: Mapping[str, str] = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",  # statements inside functions too (the release function's)
    "pg_stat_statements.track_planning": "on",  # a custom plan is made again at every execution
}

_RESET = """
SELECT pg_stat_statements_reset(), pg_stat_reset(), pg_stat_reset_shared('wal'), pg_stat_reset_shared('io')
"""
_TOP = """
SELECT query, calls, total_exec_time, total_plan_time, rows, wal_bytes, wal_fpi, shared_blks_dirtied
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY {order} DESC LIMIT $1
"""
_TABLES = """
SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del,
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = t.relid) AS indexes
FROM pg_stat_user_tables t
WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY n_tup_ins + n_tup_upd + n_tup_del DESC
"""
_TOTALS = """
SELECT (SELECT sum(calls) FROM pg_stat_statements) AS statements,
       (SELECT sum(total_exec_time) FROM pg_stat_statements) AS exec_ms,
       (SELECT sum(total_plan_time) FROM pg_stat_statements) AS plan_ms,
       (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits,
       (SELECT wal_bytes FROM pg_stat_wal) AS wal_bytes,
       (SELECT sum(fsyncs) FROM pg_stat_io WHERE object = 'wal' AND context = 'normal') AS wal_syncs
"""


@dataclass(frozen=True)
class Statement:
    query: str
    calls: float  # per run, as all the figures here
    exec_ms: float
    plan_ms: float
    rows: float
    wal_bytes: float


@dataclass(frozen=True)
class Table:
    name: str
    indexes: int
    inserted: float  # per run, as all the figures here
    updated: float
    hot_updated: float
    deleted: float


@dataclass(frozen=True)
class PerRun:
    statements: float
    exec_ms: float
    plan_ms: float
    commits: float
    wal_bytes: float
    wal_syncs: float
    top: Sequence[Statement]  # by execution time (lock waits included)
    most_called: Sequence[Statement]
    tables: Sequence[Table]


async def reset(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute(_RESET)
    finally:
        await conn.close()


async def per_run(url: str, runs: int, top: int) -> PerRun:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(_TOP.format(order="total_exec_time"), top)
        called = await conn.fetch(_TOP.format(order="calls"), top)
        totals = await conn.fetchrow(_TOTALS)
        tables = await conn.fetch(_TABLES)
    finally:
        await conn.close()
    n = max(runs, 1)
    assert totals is not None  # one row, always
    return PerRun(
        statements=float(totals["statements"] or 0) / n,
        exec_ms=float(totals["exec_ms"] or 0) / n,
        plan_ms=float(totals["plan_ms"] or 0) / n,
        commits=float(totals["commits"] or 0) / n,
        wal_bytes=float(totals["wal_bytes"] or 0) / n,
        wal_syncs=float(totals["wal_syncs"] or 0) / n,
        top=[_statement(r, n) for r in rows],
        most_called=[_statement(r, n) for r in called],
        tables=[
            Table(
                name=r["relname"],
                indexes=r["indexes"],
                inserted=r["n_tup_ins"] / n,
                updated=r["n_tup_upd"] / n,
                hot_updated=r["n_tup_hot_upd"] / n,
                deleted=r["n_tup_del"] / n,
            )
            for r in tables
        ],
    )


def _statement(record: asyncpg.Record, runs: int) -> Statement:
    return Statement(
        query=" ".join(str(record["query"]).split()),
        calls=record["calls"] / runs,
        exec_ms=record["total_exec_time"] / runs,
        plan_ms=record["total_plan_time"] / runs,
        rows=record["rows"] / runs,
        wal_bytes=float(record["wal_bytes"]) / runs,
    )


def lines(figures: PerRun, width: int = 150) -> list[str]:
    """The figures as the benchmark prints them."""
    head = (
        f"  database per run    {figures.statements:.1f} statements, {figures.commits:.1f} commits, "
        f"{figures.exec_ms:.2f} ms executing, {figures.plan_ms:.2f} ms planning, "
        f"{figures.wal_bytes / 1024:.1f} KiB WAL, "
        f"{figures.wal_syncs:.2f} WAL flushes"
    )

    def row(s: Statement) -> str:
        return (
            f"    {s.exec_ms:6.2f} ms {s.plan_ms:5.2f} ms {s.calls:5.1f} calls {s.rows:6.1f} rows "
            f"{s.wal_bytes / 1024:6.1f} KiB  {s.query[: width - 70]}"
        )

    written = [
        f"    {t.name:<24} {t.inserted:5.1f} inserted {t.updated:5.1f} updated ({t.hot_updated:4.1f} HOT) "
        f"{t.deleted:5.1f} deleted   {t.indexes} indexes"
        for t in figures.tables
    ]
    return [
        head,
        "  rows written per run (an update that is not HOT adds an entry to every index):",
        *written,
        "  top statements per run by execution time (planning, calls, rows, WAL):",
        *map(row, figures.top),
        "  most called statements per run:",
        *map(row, figures.most_called),
    ]
