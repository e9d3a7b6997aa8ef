"""Personas (`eval_personas`)."""

from __future__ import annotations

from uuid import UUID

from schemas.personas import Persona, PersonaFields
from service.core.errors import NotFound
from service.db.postgres import Connection, Record, fetch_one
from service.db.tables import Table, fetch_page, soft_delete

COLUMNS = tuple(PersonaFields.model_fields)
TABLE = Table("eval_personas", COLUMNS, order_by="name, id")

_INSERT = TABLE.insert_sql()
_SELECT = TABLE.select_sql()
_SELECT_FOR_UPDATE = TABLE.select_sql(for_update=True)
_UPDATE = TABLE.update_sql()
_DELETE = TABLE.delete_sql()


def _values(fields: PersonaFields) -> list[object]:
    data = fields.model_dump(mode="json")
    return [data[name] for name in COLUMNS]


def persona_from_record(record: Record, prefix: str = "") -> Persona:
    return Persona.model_validate(
        {key.removeprefix(prefix): value for key, value in dict(record).items() if key.startswith(prefix)}
    )


async def insert_persona(
    conn: Connection, persona_id: UUID, company_id: UUID, fields: PersonaFields
) -> Persona:
    record = await fetch_one(conn, _INSERT, persona_id, company_id, *_values(fields))
    return persona_from_record(record)


async def fetch_persona(
    conn: Connection, company_id: UUID, persona_id: UUID, *, for_update: bool = False
) -> Persona | None:
    """The company's live (not deleted) persona, or None."""
    record = await conn.fetchrow(_SELECT_FOR_UPDATE if for_update else _SELECT, persona_id, company_id)
    return None if record is None else persona_from_record(record)


async def get_persona(
    conn: Connection, company_id: UUID, persona_id: UUID, *, for_update: bool = False
) -> Persona:
    persona = await fetch_persona(conn, company_id, persona_id, for_update=for_update)
    if persona is None:
        raise NotFound(f"Persona {persona_id} not found")
    return persona


async def update_persona(
    conn: Connection, company_id: UUID, persona_id: UUID, fields: PersonaFields
) -> Persona:
    record = await conn.fetchrow(_UPDATE, persona_id, company_id, *_values(fields))
    if record is None:
        raise NotFound(f"Persona {persona_id} not found")
    return persona_from_record(record)


async def delete_persona(conn: Connection, company_id: UUID, persona_id: UUID) -> bool:
    """Soft delete; cases that use the persona keep working. False if there was no live persona."""
    return await soft_delete(conn, _DELETE, persona_id, company_id)


async def list_personas(
    conn: Connection, company_id: UUID, *, language: str | None, limit: int, offset: int
) -> tuple[list[Persona], int]:
    """The company's live personas sorted by name, and how many match."""
    where, args = "", list[object]([company_id])
    if language is not None:
        args.append(language)
        where = " AND language = $2"
    page_sql, count_sql = TABLE.list_sql(where)
    rows, total = await fetch_page(conn, page_sql, count_sql, list(args), limit=limit, offset=offset)
    return [persona_from_record(r) for r in rows], total
