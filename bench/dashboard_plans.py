"""The plan PostgreSQL runs for the Runs page's list query, read with EXPLAIN (ANALYZE, BUFFERS).

The statement is the service's own: `run_lists.list_runs_before` is called with a stand-in for
its connection that runs what it is given under EXPLAIN and keeps the plan, so the SQL explained
is the SQL the page sends, whatever it becomes. A custom plan (the parameters' values known), as
the first executions of a prepared statement get; the summary names the plan's nodes, the rows
its scans read (returned plus removed by a filter), the buffers and the times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from service.db import run_lists
from service.db.postgres import Connection

PAGE = 50  # as the page asks: one more than it shows, to know whether there is an older page


@dataclass(frozen=True)
class Plan:
    query: str
    nodes: str  # "Limit > Index Scan using eval_runs_company on eval_runs"
    rows_read: int  # rows the scans returned plus those their filters removed
    rows_removed: int
    hit_blocks: int
    read_blocks: int
    planning_ms: float
    execution_ms: float


class Explaining:
    """Stands in for a connection: runs each fetch under EXPLAIN (ANALYZE, BUFFERS) and keeps the plans."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.plans: list[Plan] = []

    async def fetch(self, query: str, *args: object) -> list[object]:
        explained = await self._conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}", *args)
        self.plans.append(summary(" ".join(query.split()), explained[0]))  # the pool decodes JSON
        return []


async def explain_page(
    conn: Connection, company_id: UUID, filters: run_lists.RunFilters, before: UUID | None = None
) -> Plan:
    """The plan of the list query of one page of runs (as `runs_page` asks for it)."""
    explaining = Explaining(conn)
    await run_lists.list_runs_before(
        cast("Connection", explaining), company_id, filters, before=before, limit=PAGE + 1
    )
    return explaining.plans[0]


def summary(query: str, explained: Mapping[str, Any]) -> Plan:
    top = explained["Plan"]
    read, removed = _rows(top)
    return Plan(
        query=query,
        nodes=_nodes(top),
        rows_read=read,
        rows_removed=removed,
        hit_blocks=int(top.get("Shared Hit Blocks", 0)),
        read_blocks=int(top.get("Shared Read Blocks", 0)),
        planning_ms=float(explained.get("Planning Time", 0.0)),
        execution_ms=float(explained.get("Execution Time", 0.0)),
    )


def _nodes(node: Mapping[str, Any]) -> str:
    name = node["Node Type"]
    if "Index Name" in node:
        name += f" using {node['Index Name']}"
    elif "Relation Name" in node:
        name += f" on {node['Relation Name']}"
    if "Sort Method" in node:
        name += f" ({node['Sort Method']})"
    children = [_nodes(child) for child in node.get("Plans", [])]
    return name if not children else f"{name} > " + " + ".join(children)


def _rows(node: Mapping[str, Any]) -> tuple[int, int]:
    """(rows read, rows removed) by the table scans under `node` (a bitmap index scan's entries
    are counted by the heap scan above it)."""
    read = removed = 0
    if "Scan" in node["Node Type"] and node["Node Type"] != "Bitmap Index Scan":
        loops = int(node.get("Actual Loops", 1))
        dropped = int(node.get("Rows Removed by Filter", 0)) + int(
            node.get("Rows Removed by Index Recheck", 0)
        )
        read, removed = (int(node.get("Actual Rows", 0)) + dropped) * loops, dropped * loops
    for child in node.get("Plans", []):
        child_read, child_removed = _rows(child)
        read, removed = read + child_read, removed + child_removed
    return read, removed


def lines(name: str, plan: Plan) -> list[str]:
    """The plan as the benchmark prints it."""
    counted = "count(" in plan.query.lower()
    return [
        f"  {name}: planning {plan.planning_ms:.2f} ms, execution {plan.execution_ms:.2f} ms; "
        f"rows read {plan.rows_read:,} ({plan.rows_removed:,} removed by a filter); "
        f"buffers {plan.hit_blocks:,} hit, {plan.read_blocks:,} read; count(*): {'yes' if counted else 'no'}",
        f"    {plan.nodes}",
    ]
