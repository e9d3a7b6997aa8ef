"""Idempotency keys (DESIGN.md §3): `(company_id, key)` → the request's fingerprint and the
resource it created, written in the transaction that creates the resource.

A concurrent request with the same key blocks on the primary key until the first one commits
(then it sees the stored row) or rolls back (then it inserts its own); the caller bounds that
wait with a lock timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from service.db.postgres import Connection

_SELECT = """
SELECT fingerprint, resource_type, resource_id FROM idempotency_keys WHERE company_id = $1 AND key = $2
"""
_INSERT = """
INSERT INTO idempotency_keys (company_id, key, fingerprint, resource_type, resource_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (company_id, key) DO NOTHING
"""
_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', $1, true)"
_PURGE = """
DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE created_at < $1 LIMIT $2)
"""


@dataclass(frozen=True)
class StoredKey:
    fingerprint: bytes
    resource_type: str
    resource_id: UUID


async def fetch_key(conn: Connection, company_id: UUID, key: str) -> StoredKey | None:
    """The stored key, or None if this key was never used (or expired)."""
    record = await conn.fetchrow(_SELECT, company_id, key)
    return None if record is None else StoredKey(bytes(record[0]), record[1], record[2])


async def store_key(
    conn: Connection, company_id: UUID, key: str, *, fingerprint: bytes, resource_type: str, resource_id: UUID
) -> StoredKey | None:
    """Store the key for the resource being created; if another request stored it first (waiting
    for that request to commit, at most the transaction's lock timeout), return its row instead."""
    status = await conn.execute(_INSERT, company_id, key, fingerprint, resource_type, resource_id)
    if status.endswith(" 1"):
        return None
    return await fetch_key(conn, company_id, key)


async def set_lock_timeout(conn: Connection, seconds: float) -> None:
    """Bound lock waits for the rest of the transaction (LockTimeout past it)."""
    await conn.execute(_LOCK_TIMEOUT, f"{int(seconds * 1000)}ms")


async def purge_keys(conn: Connection, before: datetime, batch: int = 10_000) -> int:
    """Delete up to `batch` keys created before `before`; returns how many."""
    status = await conn.execute(_PURGE, before, batch)
    return int(status.split()[-1])
