"""The SQL shapes every company-owned, soft-deleted resource table shares.

Statements are built once, at import, from each table's fixed column list (never from input);
values are always parameters. Every statement is scoped to a company: another company's row
answers exactly like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.db.postgres import Connection, Record


@dataclass(frozen=True)
class Table:
    name: str
    writable: tuple[str, ...]  # set on insert and on update, in this order
    order_by: str  # the list order, e.g. "id DESC"

    @property
    def columns(self) -> str:
        return ", ".join(("id", "company_id", *self.writable, "created_at", "updated_at", "deleted_at"))

    def prefixed_columns(self, alias: str, prefix: str) -> str:
        """The columns of a joined copy of this table, renamed `<prefix><column>`."""
        return ", ".join(f"{alias}.{c} AS {prefix}{c}" for c in self.columns.split(", "))

    def insert_sql(self) -> str:
        params = ", ".join(f"${i}" for i in range(3, len(self.writable) + 3))
        return (
            f"INSERT INTO {self.name} (id, company_id, {', '.join(self.writable)}) "
            f"VALUES ($1, $2, {params}) RETURNING {self.columns}"
        )

    def select_sql(self, *, for_update: bool = False) -> str:
        lock = " FOR UPDATE" if for_update else ""
        return (
            f"SELECT {self.columns} FROM {self.name} "
            f"WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL{lock}"
        )

    def update_sql(self) -> str:
        sets = ", ".join(f"{column} = ${i}" for i, column in enumerate(self.writable, start=3))
        return (
            f"UPDATE {self.name} SET {sets}, updated_at = now() "
            f"WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL RETURNING {self.columns}"
        )

    def delete_sql(self, extra_sets: str = "") -> str:
        return (
            f"UPDATE {self.name} SET deleted_at = now(), updated_at = now(){extra_sets} "
            f"WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL"
        )

    def list_sql(self, where: str) -> tuple[str, str]:
        """The page and the count statements; `where` uses $1 = company id, then filters."""
        clause = f"company_id = $1 AND deleted_at IS NULL{where}"
        filters = clause.count("$")
        page = (
            f"SELECT {self.columns} FROM {self.name} WHERE {clause} "
            f"ORDER BY {self.order_by} LIMIT ${filters + 1} OFFSET ${filters + 2}"
        )
        return page, f"SELECT count(*) FROM {self.name} WHERE {clause}"


async def fetch_page(
    conn: Connection, page_sql: str, count_sql: str, args: list[object], *, limit: int, offset: int
) -> tuple[list[Record], int]:
    """One page of rows and the total number of rows the filters match."""
    rows = await conn.fetch(page_sql, *args, limit, offset)
    total = await conn.fetchval(count_sql, *args) if rows or offset else 0
    return rows, int(total)


async def soft_delete(conn: Connection, sql: str, resource_id: object, company_id: object) -> bool:
    """True when a live row was deleted now; False when there was none (missing or already gone)."""
    status: str = await conn.execute(sql, resource_id, company_id)
    return status.endswith(" 1")
