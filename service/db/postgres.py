"""The narrow seam to PostgreSQL: the pool, JSON codecs, transactions, and driver-error translation.

Code above `service.db` never sees an asyncpg exception: leaving `transaction()` or
`connection()` turns a lost connection into `DatabaseUnavailable` and a constraint violation
into `ConstraintViolation` (with the constraint's name), so callers branch on our own types.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from service.core.errors import (
    ConstraintViolation,
    DatabaseError,
    DatabaseRefused,
    DatabaseUnavailable,
    InvalidText,
    LockTimeout,
)

# A dedicated connection or a pooled one: both answer the same query methods.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Record: TypeAlias = asyncpg.Record


_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    ConnectionError,
    OSError,
    TimeoutError,
)


_REFUSED = (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidCatalogNameError)
# A migration changed a type that a statement this connection prepared earlier returns. Outside
# a transaction asyncpg prepares it again and retries by itself; inside one it raises once, and
# the next attempt (a new transaction) works: transient, like a lost connection.
_STALE_STATEMENTS = (asyncpg.InvalidCachedStatementError, asyncpg.OutdatedSchemaCacheError)
_RETRYABLE = _UNAVAILABLE + _STALE_STATEMENTS


def translate(exc: BaseException) -> DatabaseError | DatabaseRefused | None:
    """Our error for a driver error, or None if it is not one we translate."""
    if isinstance(exc, _REFUSED):
        return DatabaseRefused(f"PostgreSQL refused the connection: {exc} (check AGENT_EVAL_DATABASE_URL)")
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return ConstraintViolation(str(exc), exc.constraint_name, exc.sqlstate)
    if isinstance(exc, asyncpg.UntranslatableCharacterError | asyncpg.CharacterNotInRepertoireError):
        return InvalidText(str(exc))
    if isinstance(exc, asyncpg.LockNotAvailableError | asyncpg.QueryCanceledError):
        return LockTimeout(str(exc))
    if isinstance(exc, _RETRYABLE):
        return DatabaseUnavailable(f"{type(exc).__name__}: {exc}")
    return None


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Re-raise driver errors from the block as `DatabaseError`s."""
    try:
        yield
    except (DatabaseError, DatabaseRefused):
        raise
    except Exception as exc:
        ours = translate(exc)
        if ours is None:
            raise
        raise ours from exc


async def _init_connection(conn: Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=dumps, decoder=loads, schema="pg_catalog")


# orjson is 5-15x faster than the standard library both ways (every event, turn and run config
# crosses this codec), but it reads an integer beyond 64 bits as a float and refuses to write
# one; such documents (a run of 19 or more digits anywhere, strings included) take the exact path.
_LONG_NUMBER = re.compile(r"\d{19}")


def dumps(value: object) -> str:
    """Compact JSON text, non-ASCII kept; NaN and infinities (JSON has none) are written as null,
    as pydantic writes them, where the standard library refused the whole document."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS).decode()
    except TypeError:  # an integer beyond 64 bits, or a type orjson does not write
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def loads(text: str) -> object:
    """The value of JSON text, integers exact at any size."""
    return json.loads(text) if _LONG_NUMBER.search(text) else orjson.loads(text)


async def _keep_session(_: Connection) -> None:
    """Pooled connections carry no session state (no SET, LISTEN or advisory locks: those live on
    dedicated connections), so releasing one needs no `RESET ALL` round trip; an open transaction
    is still rolled back by asyncpg before this runs."""


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 20, command_timeout_s: float = 30.0
) -> Pool:
    """A pool whose connections speak UTC and decode JSON/JSONB to Python values."""
    async with translated():
        pool: Pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            command_timeout=command_timeout_s,
            init=_init_connection,
            reset=_keep_session,
            server_settings={"timezone": "UTC", "application_name": "agent-eval"},
        )
    return pool


async def connect(
    dsn: str, *, application_name: str = "agent-eval", keepalive_s: int = 5, durable: bool = True
) -> Connection:
    """One dedicated connection (the relay's lock holder). TCP keepalives make a dead peer
    visible to the server within seconds, so its session locks are released promptly. Not
    `durable`: its commits do not wait for their WAL flush (for writes a crash may undo)."""
    settings = {
        "timezone": "UTC",
        "application_name": application_name,
        "tcp_keepalives_idle": str(keepalive_s),
        "tcp_keepalives_interval": "1",
        "tcp_keepalives_count": "3",
        "synchronous_commit": "on" if durable else "off",
    }
    async with translated():
        conn: Connection = await asyncpg.connect(dsn, server_settings=settings)
        await _init_connection(conn)
    return conn


@asynccontextmanager
async def transaction(pool: Pool, *, snapshot: bool = False) -> AsyncIterator[Connection]:
    """A pooled connection inside one transaction; commits on success, rolls back on error.
    `snapshot`: a read-only, repeatable-read transaction, so several reads see one moment."""
    isolation: Literal["repeatable_read"] | None = "repeatable_read" if snapshot else None
    async with translated(), pool.acquire() as conn, conn.transaction(isolation=isolation, readonly=snapshot):
        yield conn


@asynccontextmanager
async def connection(pool: Pool) -> AsyncIterator[Connection]:
    """A pooled connection in autocommit mode (each statement is its own transaction)."""
    async with translated(), pool.acquire() as conn:
        yield conn


@asynccontextmanager
async def in_transaction(conn: Connection) -> AsyncIterator[Connection]:
    """A transaction on a connection the caller already holds."""
    async with translated(), conn.transaction():
        yield conn


Notified = Callable[[Connection, int, str, object], None]  # (connection, pid, channel, payload)


async def listen(conn: Connection, channel: str, callback: Notified) -> None:
    """Call `callback(conn, pid, channel, payload)` for every NOTIFY on `channel`."""
    async with translated():
        await conn.add_listener(channel, callback)


async def ping(conn: Connection) -> bool:
    """True when the connection answers a trivial query."""
    return bool(await conn.fetchval("SELECT 1") == 1)


async def fetch_one(conn: Connection, sql: str, *args: object) -> Record:
    """The row a statement always returns (`INSERT … RETURNING`, an aggregate); a statement that
    returns none anyway is a database error, not a silent None."""
    record = await conn.fetchrow(sql, *args)
    if record is None:
        raise DatabaseError("the statement returned no row")
    return record


async def close_quietly(conn: Connection) -> None:
    """Close a dedicated connection, or terminate it if closing fails (it may already be dead)."""
    try:
        await conn.close(timeout=2)
    except Exception:  # closing a broken connection is best effort by nature
        conn.terminate()
