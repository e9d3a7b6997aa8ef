"""Agents (`agents`): the text-simulation fields as columns, every other reference field in
`extra_fields` (stored and echoed)."""

from __future__ import annotations

from uuid import UUID

from pydantic import JsonValue

from schemas.agents import Agent, AgentFields
from service.core.errors import NotFound
from service.db.postgres import Connection, Record, fetch_one
from service.db.tables import Table, fetch_page, soft_delete

COLUMNS = (
    "name",
    "type",
    "description",
    "system_prompt",
    "temperature",
    "greeting_message",
    "agent_speaks_first",
    "language",
    "model",
    "tools",
    "flow_config",
    "rules",
    "max_call_duration_secs",
    "is_active",
)
EXTRA = tuple(name for name in AgentFields.model_fields if name not in COLUMNS)
TABLE = Table("agents", (*COLUMNS, "extra_fields"), order_by="id DESC")

_INSERT = TABLE.insert_sql()
_SELECT = TABLE.select_sql()
_SELECT_FOR_UPDATE = TABLE.select_sql(for_update=True)
_UPDATE = TABLE.update_sql()
_DELETE = TABLE.delete_sql(", is_active = false")


def _values(fields: AgentFields) -> list[object]:
    data = fields.model_dump(mode="json")
    extra: dict[str, JsonValue] = {name: data[name] for name in EXTRA}
    return [*(data[name] for name in COLUMNS), extra]


def agent_from_record(record: Record, prefix: str = "") -> Agent:
    row = {key.removeprefix(prefix): value for key, value in dict(record).items() if key.startswith(prefix)}
    extra = row.pop("extra_fields")
    return Agent.model_validate({**row, **extra})


async def insert_agent(conn: Connection, agent_id: UUID, company_id: UUID, fields: AgentFields) -> Agent:
    record = await fetch_one(conn, _INSERT, agent_id, company_id, *_values(fields))
    return agent_from_record(record)


async def fetch_agent(
    conn: Connection, company_id: UUID, agent_id: UUID, *, for_update: bool = False
) -> Agent | None:
    """The company's live (not deleted) agent, or None."""
    record = await conn.fetchrow(_SELECT_FOR_UPDATE if for_update else _SELECT, agent_id, company_id)
    return None if record is None else agent_from_record(record)


async def get_agent(conn: Connection, company_id: UUID, agent_id: UUID, *, for_update: bool = False) -> Agent:
    agent = await fetch_agent(conn, company_id, agent_id, for_update=for_update)
    if agent is None:
        raise NotFound(f"Agent {agent_id} not found")
    return agent


async def update_agent(conn: Connection, company_id: UUID, agent_id: UUID, fields: AgentFields) -> Agent:
    """Replace every field (the caller merged a patch into the current agent)."""
    record = await conn.fetchrow(_UPDATE, agent_id, company_id, *_values(fields))
    if record is None:
        raise NotFound(f"Agent {agent_id} not found")
    return agent_from_record(record)


async def delete_agent(conn: Connection, company_id: UUID, agent_id: UUID) -> bool:
    """Soft delete: sets deleted_at and is_active = false. False if there was no live agent."""
    return await soft_delete(conn, _DELETE, agent_id, company_id)


async def list_agents(
    conn: Connection, company_id: UUID, *, type_: str | None, is_active: bool | None, limit: int, offset: int
) -> tuple[list[Agent], int]:
    """The company's live agents, newest first, and how many match."""
    where, args = "", list[object]([company_id])
    if type_ is not None:
        args.append(type_)
        where += f" AND type = ${len(args)}"
    if is_active is not None:
        args.append(is_active)
        where += f" AND is_active = ${len(args)}"
    page_sql, count_sql = TABLE.list_sql(where)
    rows, total = await fetch_page(conn, page_sql, count_sql, list(args), limit=limit, offset=offset)
    return [agent_from_record(r) for r in rows], total
