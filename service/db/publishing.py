"""The relay's side of the outbox: the rows waiting to be published, in publish order; taking
published rows off the pending list (with where the bus put each run request); how many wait;
and the purge of published rows past retention. Rows are written by `service.db.outbox`; its
insert trigger lists every new row in `outbox_pending` in the inserting statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from schemas.events import EventType
from service.db.postgres import Connection, Record, fetch_one


@dataclass(frozen=True)
class OutboxRow:
    """An event waiting to be (or already) published; `payload` is its JSON body as text."""

    id: int
    event_id: UUID
    topic: str
    key: str
    type: str
    run_id: UUID | None
    sequence: int | None
    payload: str
    traceparent: str | None
    created_at: datetime


# The pending ids first, then each row by its key: a `LIMIT` in the lateral subquery keeps the
# planner from flattening it into a join. As a plain join it chose a merge join that read
# `outbox` by id from its first row (every published row kept as the event store) up to the
# pending ones, since it expected pending ids spread over the whole table: its cost grew with
# retention (13 ms per poll after 2,000 runs, 3 ms of PostgreSQL per run).
_SELECT_UNSENT = """
SELECT o.id, o.event_id, o.topic, o.key, o.type, o.run_id, o.sequence, o.payload::text AS payload,
       o.traceparent, o.created_at
FROM (SELECT id FROM outbox_pending ORDER BY id LIMIT $1) AS p
CROSS JOIN LATERAL (SELECT * FROM outbox WHERE outbox.id = p.id LIMIT 1) AS o
ORDER BY p.id
"""
# Published rows leave the pending list; only run requests keep where the bus put them (the
# stale-pending sweep compares that with the executors' offsets); no indexed column changes, so
# that update is HOT when the page has room.
_MARK_SENT = f"""
WITH published AS (
    DELETE FROM outbox_pending AS pending
    USING unnest($1::bigint[], $2::int[], $3::bigint[]) AS p (id, part, pos)
    WHERE pending.id = p.id
    RETURNING p.id, p.part, p.pos
)
UPDATE outbox AS o SET published_partition = published.part, published_offset = published.pos
FROM published
WHERE o.id = published.id AND o.type = '{EventType.RUN_REQUESTED.value}'
"""
# The flag writers read to decide whether to wake the relay (migration 0021). A crash may undo
# it: the next relay writes it when it takes the lead.
_SET_SLEEPING = "UPDATE relay_state SET sleeping = $1"
_PURGE_SENT = """
DELETE FROM outbox WHERE id IN (
    SELECT o.id FROM outbox AS o
    WHERE o.created_at < now() - make_interval(secs => $1)
      AND NOT EXISTS (SELECT 1 FROM outbox_pending AS p WHERE p.id = o.id)
    LIMIT $2)
"""
_UNSENT_STATS = """
SELECT count(*) AS n, min(o.created_at) AS oldest FROM outbox_pending AS p
CROSS JOIN LATERAL (SELECT created_at FROM outbox WHERE outbox.id = p.id LIMIT 1) AS o
"""


def _row(record: Record) -> OutboxRow:
    return OutboxRow(**dict(record))


async def fetch_unsent(conn: Connection, limit: int) -> list[OutboxRow]:
    """The oldest unsent rows, in publish (id) order."""
    return [_row(r) for r in await conn.fetch(_SELECT_UNSENT, limit)]


async def mark_sent(conn: Connection, ids: Sequence[int], positions: Sequence[tuple[int, int]]) -> None:
    """Take published rows off the pending list, and record where the bus put each run request:
    `positions` holds (partition, offset) in the order of `ids`. They stay as the event store
    until purged."""
    partitions, offsets = [p for p, _ in positions], [o for _, o in positions]
    await conn.execute(_MARK_SENT, list(ids), partitions, offsets)


async def set_relay_sleeping(conn: Connection, sleeping: bool) -> None:
    """Say whether the active relay waits to be woken (True) or polls (False): writers notify
    only while it sleeps."""
    await conn.execute(_SET_SLEEPING, sleeping)


async def purge_sent(conn: Connection, older_than_s: float, batch: int = 10_000) -> int:
    """Delete up to `batch` published rows written more than `older_than_s` seconds ago; returns
    how many."""
    status = await conn.execute(_PURGE_SENT, older_than_s, batch)
    return int(status.split()[-1])


async def unsent_stats(conn: Connection) -> tuple[int, datetime | None]:
    """How many rows wait to be published, and when the oldest was written."""
    record = await fetch_one(conn, _UNSENT_STATS)
    return int(record["n"]), record["oldest"]
