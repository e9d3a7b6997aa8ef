"""The outbox: every event is written here in the transaction of the state change it announces.

`append_event` allocates the run's next `sequence` with an UPDATE of the run row, so events of
one run are numbered in commit order (the row lock serialises them). The insert trigger lists
every new row in `outbox_pending`; the relay publishes them in id order and takes them off the
list. Rows stay `event_retention_hours` (from when they were written) as the event store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from schemas.api import RunSummary, Turn
from schemas.events import (
    EVENT_ADAPTER,
    RUN_EVENTS,
    Event,
    EventType,
    RunRequest,
    topic_of,
)
from service.core.clock import SYSTEM_CLOCK
from service.core.errors import NotFound
from service.core.ids import new_id
from service.core.tracing import child_traceparent
from service.db.postgres import Connection

NOTIFY_CHANNEL = "agent_eval_outbox"


_INSERT = """
INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                    created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""
_SELECT_RUN_EVENTS = """
SELECT payload::text FROM outbox WHERE run_id = $1 AND sequence > $2 ORDER BY sequence
"""
_SELECT_RUN_EVENT_PAGE = """
SELECT sequence, type, payload::text AS payload FROM outbox
WHERE run_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3
"""


def events_for_run_sql(first: int, *, data: str | None = None) -> str:
    """`INSERT INTO outbox … SELECT … FROM run, unnest(…)`: run events passed as
    `run_event_columns` in parameters `$first`..`$first+5`, written for the row of a CTE named
    `run` that returns `id`, `company_id` and `last_event_seq` already raised by
    `event_count(first)`. They are numbered after what the run had, in the given order, with
    the sequence and the company (and `data`, an SQL jsonb expression, when given) put into
    their bodies. No RETURNING: a statement adds what it needs."""
    ids, topics, types, bodies, parents, times = (f"${first + i}" for i in range(6))
    sequence = f"run.last_event_seq - {event_count(first)} + e.ord"
    body = f"'sequence', {sequence}, 'company_id', run.company_id" + (f", 'data', {data}" if data else "")
    return f"""
INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                    created_at)
SELECT e.event_id, e.topic, run.id::text, e.type, run.company_id, run.id, {sequence},
       e.payload || jsonb_build_object({body}), e.traceparent, e.created_at
FROM run, unnest({ids}::uuid[], {topics}::text[], {types}::text[], {bodies}::jsonb[], {parents}::text[],
                 {times}::timestamptz[])
          WITH ORDINALITY AS e (event_id, topic, type, payload, traceparent, created_at, ord)
"""


def event_count(first: int) -> str:
    """How many events an `events_for_run_sql(first)` statement writes, in SQL."""
    return f"cardinality(${first}::uuid[])"


_APPEND_RUN_EVENTS = f"""
WITH run AS (
    UPDATE eval_runs SET last_event_seq = last_event_seq + {event_count(2)}
    WHERE id = $1
    RETURNING id, company_id, last_event_seq
)
{events_for_run_sql(2)}
RETURNING company_id, sequence
"""
_UNKNOWN_COMPANY = UUID(int=0)  # stands in until the statement fills in the run's company
_UNKNOWN_RUN = UUID(int=0)  # stands in until the statement fills in each released run


async def append_event(
    conn: Connection, run_id: UUID, type: EventType, data: RunSummary | Turn, *, now: datetime | None = None
) -> Event:
    """Write a run event in the caller's transaction; its sequence is the run's next number."""
    (event,) = await append_events(conn, run_id, [(type, data)], now=now)
    return event


async def append_events(
    conn: Connection,
    run_id: UUID,
    events: Sequence[tuple[EventType, RunSummary | Turn]],
    *,
    now: datetime | None = None,
) -> list[Event]:
    """Run events in one statement (one round trip), numbered consecutively in the given order:
    the run's `last_event_seq` is raised under its row lock and the outbox rows carry the new
    numbers, in their column and in their body, with the run's company."""
    built = unnumbered_run_events(run_id, events, now=now)
    rows = await conn.fetch(_APPEND_RUN_EVENTS, run_id, *run_event_columns(built))
    if not rows:
        raise NotFound(f"Run {run_id} not found")
    return numbered(built, rows[0]["company_id"], sorted(r["sequence"] for r in rows))


def unnumbered_run_events(
    run_id: UUID, events: Sequence[tuple[EventType, RunSummary | Turn]], *, now: datetime | None = None
) -> list[Event]:
    """Run events whose sequence and company the writing statement fills in (from the run row)."""
    for type, _ in events:
        if type not in RUN_EVENTS:
            raise ValueError(f"{type} is not a run event")
    return [
        _build(type, company_id=_UNKNOWN_COMPANY, run_id=run_id, sequence=1, data=data, now=now)
        for type, data in events
    ]


def numbered(events: Sequence[Event], company_id: UUID, sequences: Sequence[int]) -> list[Event]:
    """The events as written: with the run's company and the sequences allocated."""
    return [
        event.model_copy(update={"sequence": number, "company_id": company_id})
        for event, number in zip(events, sequences, strict=True)
    ]


def run_event_columns(events: Sequence[Event]) -> list[list[object]]:
    """Columns for `unnest(event_id uuid[], topic, type, payload jsonb[], traceparent, created_at)`."""
    return [
        [event.id for event in events],
        [topic_of(EventType(event.type)).value for event in events],
        [event.type for event in events],
        [EVENT_ADAPTER.dump_python(event, mode="json") for event in events],
        [child_traceparent() for _ in events],
        [event.time for event in events],
    ]


async def append_entity_event(
    conn: Connection,
    type: EventType,
    company_id: UUID,
    key: UUID,
    data: BaseModel,
    *,
    now: datetime | None = None,
) -> Event:
    """Write a non-run event (suite run done, endpoint disabled), keyed by its entity id."""
    if type in RUN_EVENTS or type is EventType.RUN_REQUESTED:
        raise ValueError(f"{type} is not an entity event")
    event = _build(type, company_id=company_id, run_id=None, sequence=None, data=data, now=now)
    await _insert(conn, event, key=str(key))
    return event


def _run_request(run_id: UUID, company_id: UUID, now: datetime | None) -> Event:
    return _build(
        EventType.RUN_REQUESTED,
        company_id=company_id,
        run_id=run_id,
        sequence=None,
        data=RunRequest(run_id=run_id),
        now=now,
    )


async def append_run_request(
    conn: Connection, run_id: UUID, company_id: UUID, *, now: datetime | None = None
) -> Event:
    """Ask an executor to run (or resume) a released run: a command on the run-requests topic."""
    event = _run_request(run_id, company_id, now)
    await _insert(conn, event, key=str(run_id))
    return event


def run_requests_sql(first: int, *, runs: str, company: str) -> str:
    """`INSERT INTO outbox … SELECT …`: a run request for each row of `runs` (an SQL relation
    with a `run_id` column) of the company `company` (an SQL expression), from the parameters
    `run_request_parameters` gives, in `$first`..`$first+3`. For a statement that chooses its
    runs itself (a release), so that the runs and their requests commit together: each request
    gets its event id and time from the database (the time it was written, after any wait for
    the release's lock) and the rest of its body from one template."""
    topic, type, template, parent = (f"${first + i}" for i in range(4))
    time = """to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    return f"""
INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, payload, traceparent, created_at)
SELECT e.event_id, {topic}, e.run_id::text, {type}, {company}, e.run_id,
       {template}::jsonb || jsonb_build_object('id', e.event_id, 'time', {time}, 'run_id', e.run_id,
                                               'data', jsonb_build_object('run_id', e.run_id)),
       {parent}, e.at
FROM (SELECT agent_eval_uuid7() AS event_id, clock_timestamp() AS at, run_id FROM {runs}) AS e
"""


def run_request_parameters(company_id: UUID, *, now: datetime | None = None) -> list[object]:
    """The parameters of `run_requests_sql`: topic, type, a body whose `id`, `time`, `run_id` and
    `data` the statement fills in, and a traceparent."""
    template = _run_request(_UNKNOWN_RUN, company_id, now)
    return [
        topic_of(EventType.RUN_REQUESTED).value,
        EventType.RUN_REQUESTED.value,
        EVENT_ADAPTER.dump_python(template, mode="json"),
        child_traceparent(),
    ]


def _build(
    type: EventType,
    *,
    company_id: UUID,
    run_id: UUID | None,
    sequence: int | None,
    data: BaseModel,
    now: datetime | None,
) -> Event:
    return EVENT_ADAPTER.validate_python(
        {
            "id": new_id(),
            "type": type,
            "time": now or SYSTEM_CLOCK.now(),
            "company_id": company_id,
            "run_id": run_id,
            "sequence": sequence,
            "data": data,
        }
    )


def _values(event: Event, *, key: str) -> tuple[object, ...]:
    return (
        event.id,
        topic_of(EventType(event.type)).value,
        key,
        event.type,
        event.company_id,
        event.run_id,
        event.sequence,
        EVENT_ADAPTER.dump_python(event, mode="json"),
        child_traceparent(),
        event.time,
    )


async def _insert(conn: Connection, event: Event, *, key: str) -> None:
    await conn.execute(_INSERT, *_values(event, key=key))


async def list_run_event_bodies(conn: Connection, run_id: UUID, after_sequence: int = 0) -> list[str]:
    """A run's event bodies (JSON text) after `after_sequence`, in sequence order."""
    return [r[0] for r in await conn.fetch(_SELECT_RUN_EVENTS, run_id, after_sequence)]


@dataclass(frozen=True)
class StoredRunEvent:
    """A run event as the event store keeps it: its number, type and JSON body."""

    sequence: int
    type: str
    payload: str


async def list_run_events(
    conn: Connection, run_id: UUID, after_sequence: int, limit: int
) -> list[StoredRunEvent]:
    """Up to `limit` of a run's events after `after_sequence`, in sequence order (SSE replay)."""
    rows = await conn.fetch(_SELECT_RUN_EVENT_PAGE, run_id, after_sequence, limit)
    return [StoredRunEvent(r["sequence"], r["type"], r["payload"]) for r in rows]
