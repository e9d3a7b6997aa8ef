"""Cases (`eval_cases`), read with their agent and persona embedded (one query, joined)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from pydantic import JsonValue

from schemas.agents import AgentOverrides
from schemas.cases import Case, CaseFields
from service.core.errors import NotFound
from service.db import agents, personas
from service.db.postgres import Connection, Record
from service.db.tables import Table, soft_delete

COLUMNS = ("agent_id", "persona_id", *CaseFields.model_fields)
TABLE = Table("eval_cases", COLUMNS, order_by="id DESC")

_PLACEHOLDERS = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 3))
_INSERT = f"INSERT INTO eval_cases (id, company_id, {', '.join(COLUMNS)}) VALUES ({_PLACEHOLDERS})"
_UPDATE = TABLE.update_sql()
_DELETE = TABLE.delete_sql()
_SELECT_JOINED = f"""
SELECT {", ".join(f"c.{c}" for c in TABLE.columns.split(", "))},
       {agents.TABLE.prefixed_columns("a", "a__")},
       {personas.TABLE.prefixed_columns("p", "p__")}
FROM eval_cases c
JOIN agents a ON a.id = c.agent_id
JOIN eval_personas p ON p.id = c.persona_id
"""
_SELECT_ONE = f"{_SELECT_JOINED} WHERE c.id = $1 AND c.company_id = $2 AND c.deleted_at IS NULL"
# The case and what its company can pay, read together for a trigger (one round trip).
_SELECT_FOR_RUN = f"""
SELECT joined.*, co.balance_cents AS co__balance_cents, co.is_suspended AS co__is_suspended
FROM ({_SELECT_ONE}) AS joined JOIN companies co ON co.id = $2
"""
_LOCK_ONE = "SELECT id FROM eval_cases WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL FOR UPDATE"


@dataclass(frozen=True)
class CaseFilters:
    agent_id: UUID | None = None
    persona_id: UUID | None = None
    suite_id: UUID | None = None


def _values(agent_id: UUID, persona_id: UUID, fields: CaseFields) -> list[object]:
    data = fields.model_dump(mode="json", exclude={"agent_overrides", "suite_id"})
    overrides: dict[str, JsonValue] | None = (
        None if fields.agent_overrides is None else fields.agent_overrides.changes()
    )
    values: dict[str, object] = {
        **data,
        "agent_id": agent_id,
        "persona_id": persona_id,
        "suite_id": fields.suite_id,
        "agent_overrides": overrides,
    }
    return [values[name] for name in COLUMNS]


def case_from_record(record: Record) -> Case:
    row = {key: value for key, value in dict(record).items() if "__" not in key}
    if row["agent_overrides"] is not None:
        row["agent_overrides"] = AgentOverrides.model_validate(row["agent_overrides"])
    return Case.model_validate(
        {
            **row,
            "agent": agents.agent_from_record(record, "a__"),
            "persona": personas.persona_from_record(record, "p__"),
        }
    )


async def insert_case(
    conn: Connection, case_id: UUID, company_id: UUID, *, agent_id: UUID, persona_id: UUID, fields: CaseFields
) -> Case:
    await conn.execute(_INSERT, case_id, company_id, *_values(agent_id, persona_id, fields))
    return await get_case(conn, company_id, case_id)


async def fetch_case(conn: Connection, company_id: UUID, case_id: UUID) -> Case | None:
    """The company's live case with its agent and persona (even if those were deleted since)."""
    record = await conn.fetchrow(_SELECT_ONE, case_id, company_id)
    return None if record is None else case_from_record(record)


@dataclass(frozen=True)
class Funds:
    """What the trigger-time money check reads of the company (DESIGN.md §7)."""

    balance_cents: int
    is_suspended: bool


async def get_case_for_run(conn: Connection, company_id: UUID, case_id: UUID) -> tuple[Case, Funds]:
    """The company's live case (as `get_case`) and its company's funds, or NotFound."""
    record = await conn.fetchrow(_SELECT_FOR_RUN, case_id, company_id)
    if record is None:
        raise NotFound(f"Case {case_id} not found")
    return case_from_record(record), Funds(record["co__balance_cents"], record["co__is_suspended"])


async def get_case(conn: Connection, company_id: UUID, case_id: UUID) -> Case:
    case = await fetch_case(conn, company_id, case_id)
    if case is None:
        raise NotFound(f"Case {case_id} not found")
    return case


async def lock_case(conn: Connection, company_id: UUID, case_id: UUID) -> None:
    """Lock the live case row for the rest of the transaction, or NotFound."""
    if await conn.fetchval(_LOCK_ONE, case_id, company_id) is None:
        raise NotFound(f"Case {case_id} not found")


async def update_case(
    conn: Connection, company_id: UUID, case_id: UUID, *, agent_id: UUID, persona_id: UUID, fields: CaseFields
) -> Case:
    """Replace every field (the caller merged a patch into the current case)."""
    if await conn.fetchrow(_UPDATE, case_id, company_id, *_values(agent_id, persona_id, fields)) is None:
        raise NotFound(f"Case {case_id} not found")
    return await get_case(conn, company_id, case_id)


async def delete_case(conn: Connection, company_id: UUID, case_id: UUID) -> bool:
    """Soft delete; runs of the case stay as history. False if there was no live case."""
    return await soft_delete(conn, _DELETE, case_id, company_id)


async def list_cases(
    conn: Connection, company_id: UUID, filters: CaseFilters, *, limit: int, offset: int
) -> tuple[list[Case], int]:
    """The company's live cases, newest first, with agent and persona embedded; and the total."""
    where, args = "c.company_id = $1 AND c.deleted_at IS NULL", list[object]([company_id])
    for column in ("agent_id", "persona_id", "suite_id"):
        value = getattr(filters, column)
        if value is not None:
            args.append(value)
            where += f" AND c.{column} = ${len(args)}"
    page = f"{_SELECT_JOINED} WHERE {where} ORDER BY c.id DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}"
    rows = await conn.fetch(page, *args, limit, offset)
    total = (
        await conn.fetchval(f"SELECT count(*) FROM eval_cases c WHERE {where}", *args)
        if rows or offset
        else 0
    )
    return [case_from_record(r) for r in rows], int(total)


_SUITE_CASES = (
    f"{_SELECT_JOINED} WHERE c.company_id = $1 AND c.suite_id = $2 AND c.deleted_at IS NULL ORDER BY c.id"
)
_CASES_BY_IDS = f"""
{_SELECT_JOINED} WHERE c.company_id = $1 AND c.id = ANY($2::uuid[]) AND c.deleted_at IS NULL ORDER BY c.id
"""


async def list_suite_cases(conn: Connection, company_id: UUID, suite_id: UUID) -> list[Case]:
    """Every live case of the suite, oldest first (the order a suite run takes them in)."""
    return [case_from_record(r) for r in await conn.fetch(_SUITE_CASES, company_id, suite_id)]


async def list_cases_by_ids(conn: Connection, company_id: UUID, case_ids: list[UUID]) -> list[Case]:
    """The company's live cases among `case_ids`, oldest first (deleted ones are left out)."""
    return [case_from_record(r) for r in await conn.fetch(_CASES_BY_IDS, company_id, case_ids)]
