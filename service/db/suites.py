"""Suites (`eval_suites`)."""

from __future__ import annotations

from uuid import UUID

from schemas.suites import Suite, SuiteFields
from service.core.errors import NotFound
from service.db.postgres import Connection, Record, fetch_one
from service.db.tables import Table, fetch_page, soft_delete

COLUMNS = tuple(SuiteFields.model_fields)
TABLE = Table("eval_suites", COLUMNS, order_by="id DESC")

_INSERT = TABLE.insert_sql()
_SELECT = TABLE.select_sql()
_SELECT_FOR_UPDATE = TABLE.select_sql(for_update=True)
_UPDATE = TABLE.update_sql()
_DELETE = TABLE.delete_sql()


def _values(fields: SuiteFields) -> list[object]:
    return [getattr(fields, name) for name in COLUMNS]


def _suite(record: Record) -> Suite:
    return Suite.model_validate(dict(record))


async def insert_suite(conn: Connection, suite_id: UUID, company_id: UUID, fields: SuiteFields) -> Suite:
    record = await fetch_one(conn, _INSERT, suite_id, company_id, *_values(fields))
    return _suite(record)


async def fetch_suite(
    conn: Connection, company_id: UUID, suite_id: UUID, *, for_update: bool = False
) -> Suite | None:
    """The company's live (not deleted) suite, or None."""
    record = await conn.fetchrow(_SELECT_FOR_UPDATE if for_update else _SELECT, suite_id, company_id)
    return None if record is None else _suite(record)


async def get_suite(conn: Connection, company_id: UUID, suite_id: UUID, *, for_update: bool = False) -> Suite:
    suite = await fetch_suite(conn, company_id, suite_id, for_update=for_update)
    if suite is None:
        raise NotFound(f"Suite {suite_id} not found")
    return suite


async def update_suite(conn: Connection, company_id: UUID, suite_id: UUID, fields: SuiteFields) -> Suite:
    record = await conn.fetchrow(_UPDATE, suite_id, company_id, *_values(fields))
    if record is None:
        raise NotFound(f"Suite {suite_id} not found")
    return _suite(record)


async def delete_suite(conn: Connection, company_id: UUID, suite_id: UUID) -> bool:
    """Soft delete; its cases keep their suite_id. False if there was no live suite."""
    return await soft_delete(conn, _DELETE, suite_id, company_id)


async def list_suites(
    conn: Connection, company_id: UUID, *, limit: int, offset: int
) -> tuple[list[Suite], int]:
    """The company's live suites, newest first, and how many there are."""
    page_sql, count_sql = TABLE.list_sql("")
    rows, total = await fetch_page(conn, page_sql, count_sql, [company_id], limit=limit, offset=offset)
    return [_suite(r) for r in rows], total
