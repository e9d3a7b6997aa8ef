"""Listing a company's runs, newest first (UUIDv7 ids are time-ordered), with filters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from service.core.ids import first_id_at
from service.db.postgres import Connection
from service.db.runs import RUN_COLUMNS, RunRow, run_from_record

_EQUAL_FILTERS = ("case_id", "suite_id", "suite_run_id", "status")
# A run's id (UUIDv7) is made by the service and its created_at by the database a moment later:
# a creation-time range is also an id range widened by this much, which the primary key serves
# (without it, "runs of a month ago" walked every newer run to find them).
ID_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class RunFilters:
    case_id: UUID | None = None
    suite_id: UUID | None = None
    suite_run_id: UUID | None = None
    status: str | None = None
    labels: dict[str, str] = field(default_factory=dict)  # every one must match
    created_after: datetime | None = None
    created_before: datetime | None = None


def _where(company_id: UUID, filters: RunFilters) -> tuple[str, list[object]]:
    where, args = "company_id = $1", list[object]([company_id])
    for column in _EQUAL_FILTERS:
        value = getattr(filters, column)
        if value is not None:
            args.append(value)
            where += f" AND {column} = ${len(args)}"
    if filters.labels:
        args.append(filters.labels)
        where += f" AND labels @> ${len(args)}::jsonb AND labels <> '{{}}'::jsonb"  # the sparse GIN index
    if filters.created_after is not None:
        args.extend((filters.created_after, first_id_at(filters.created_after - ID_SKEW)))
        where += f" AND created_at > ${len(args) - 1} AND id >= ${len(args)}"
    if filters.created_before is not None:
        args.extend((filters.created_before, first_id_at(filters.created_before + ID_SKEW)))
        where += f" AND created_at < ${len(args) - 1} AND id < ${len(args)}"
    return where, args


async def list_runs(
    conn: Connection, company_id: UUID, filters: RunFilters, *, limit: int, offset: int
) -> tuple[list[RunRow], int]:
    """The company's runs matching `filters`, newest first; and how many match in all."""
    where, args = _where(company_id, filters)
    n = len(args)
    order = f"ORDER BY id DESC LIMIT ${n + 1} OFFSET ${n + 2}"
    page = f"SELECT {RUN_COLUMNS} FROM eval_runs WHERE {where} {order}"
    rows = await conn.fetch(page, *args, limit, offset)
    if not rows and not offset:
        return [], 0
    total = await conn.fetchval(f"SELECT count(*) FROM eval_runs WHERE {where}", *args)
    return [run_from_record(r) for r in rows], int(total)


@dataclass(frozen=True)
class RunItem:
    """What a list of runs shows of each: no config snapshot (~2 kB of JSON each), only its case's name."""

    id: UUID
    case_id: UUID | None
    case_name: str
    status: str
    queue_status: str
    termination_reason: str | None
    pass_fail: bool | None
    score: float | None
    total_cost_cents: int
    labels: dict[str, str]
    created_at: datetime


_ITEM_COLUMNS = (
    "id, case_id, coalesce(config -> 'case' ->> 'name', '') AS case_name, status, queue_status, "
    "termination_reason, pass_fail, score, total_cost_cents, labels, created_at"
)


async def list_runs_before(
    conn: Connection, company_id: UUID, filters: RunFilters, *, before: UUID | None, limit: int
) -> list[RunItem]:
    """Up to `limit` of the company's runs matching `filters`, newest first, older than the run
    `before` (keyset pagination: the page costs the same however deep it is; no count)."""
    where, args = _where(company_id, filters)
    if before is not None:
        args.append(before)
        where += f" AND id < ${len(args)}"
    args.append(limit)
    sql = f"SELECT {_ITEM_COLUMNS} FROM eval_runs WHERE {where} ORDER BY id DESC LIMIT ${len(args)}"
    return [RunItem(**dict(r)) for r in await conn.fetch(sql, *args)]


@dataclass(frozen=True)
class RunOutcome:
    """What a pass/fail strip shows of a run."""

    id: UUID
    case_id: UUID
    status: str
    queue_status: str
    pass_fail: bool | None
    score: float | None
    created_at: datetime


_RECENT_OUTCOMES = """
SELECT r.id, c.case_id, r.status, r.queue_status, r.pass_fail, r.score, r.created_at
FROM unnest($2::uuid[]) AS c (case_id)
CROSS JOIN LATERAL (
    SELECT id, status, queue_status, pass_fail, score, created_at FROM eval_runs
    WHERE case_id = c.case_id AND company_id = $1 ORDER BY id DESC LIMIT $3
) AS r
ORDER BY c.case_id, r.id DESC
"""


async def list_recent_outcomes(
    conn: Connection, company_id: UUID, case_ids: list[UUID], per_case: int
) -> dict[UUID, list[RunOutcome]]:
    """The newest `per_case` runs of each case, newest first (one index range per case)."""
    found: dict[UUID, list[RunOutcome]] = {case_id: [] for case_id in case_ids}
    for r in await conn.fetch(_RECENT_OUTCOMES, company_id, case_ids, per_case):
        found[r["case_id"]].append(RunOutcome(**dict(r)))
    return found
