"""Fixed 60-second windows per API key, counted in PostgreSQL so every gateway shares them."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from service.db.postgres import Connection

# Committed without waiting for its WAL flush: every request of a key updates the window's one
# row, so a durable commit would queue the key's requests behind each other's flushes. A crash
# can forget the last moment's counts, which only lets a key go that far over its limit once.
_COUNT = """
INSERT INTO rate_limit_windows (api_key_id, window_start, n)
SELECT $1, $2, 1 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
ON CONFLICT (api_key_id, window_start) DO UPDATE SET n = rate_limit_windows.n + 1
RETURNING n
"""
_PURGE = "DELETE FROM rate_limit_windows WHERE window_start < $1"


async def count_request(conn: Connection, api_key_id: UUID, window_start: datetime) -> int:
    """Count one request in the key's window; returns the window's count including it."""
    count = await conn.fetchval(_COUNT, api_key_id, window_start)
    return int(count)


async def purge_windows(conn: Connection, before: datetime) -> int:
    """Delete windows that started before `before`; returns how many."""
    status: str = await conn.execute(_PURGE, before)
    return int(status.rsplit(maxsplit=1)[-1])
