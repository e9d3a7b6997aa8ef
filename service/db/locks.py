"""Session-level advisory locks: held as long as the connection lives, freed when it dies."""

from __future__ import annotations

from service.db.postgres import Connection

# One key per singleton role. Migrations use their own key (service.db.migrate).
RELAY_LOCK_KEY = 7_301_245_002

_TRY_LOCK = "SELECT pg_try_advisory_lock($1)"
_UNLOCK = "SELECT pg_advisory_unlock($1)"


async def try_advisory_lock(conn: Connection, key: int) -> bool:
    """Take the lock if it is free; True when this session now holds it."""
    return bool(await conn.fetchval(_TRY_LOCK, key))


async def advisory_unlock(conn: Connection, key: int) -> bool:
    return bool(await conn.fetchval(_UNLOCK, key))
