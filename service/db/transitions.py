"""A run's state change and the events announcing it, in one statement.

`transition_sql` wraps an UPDATE of `eval_runs` so that the same statement allocates the events'
sequence numbers on the row it updates and writes the outbox rows, each carrying the updated
row's summary as its `data`. The summary is built in SQL from `RunSummary`'s own field list, so
it is exactly the row as committed; the rest of each event body (id, type, time, run id) comes
from `schemas.events` as for every other event. One statement is atomic on its own, so a state
change announced this way needs no transaction round trips; inside a transaction it is simply
one of its statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from schemas.api import QueueStatus, RunStatus, RunSummary
from schemas.events import EventType
from service.db import outbox
from service.db.core import Connection
from service.db.runs import RUN_COLUMNS, Run, run_from_record

SUMMARY_SQL = "jsonb_build_object({})".format(
    ", ".join(f"'{name}', run.{name}" for name in RunSummary.model_fields)
)


def transition_sql(set_clause: str, where: str, *, params: int, notify: str | None = None) -> str:
    """The statement for `UPDATE eval_runs SET <set_clause> WHERE id = $1 AND <where>` (its own
    parameters are $1..$params) plus its events; with `notify`, NOTIFY that channel with the id."""
    ids, topics, types, bodies, parents, times = (f"${params + i}" for i in range(1, 7))
    count = f"cardinality({ids}::uuid[])"
    notified = f", pg_notify('{notify}', run.id::text) AS notified" if notify else ""
    return f"""
WITH run AS (
    UPDATE eval_runs SET {set_clause}, last_event_seq = last_event_seq + {count}
    WHERE id = $1 AND {where}
    RETURNING {RUN_COLUMNS}
), announced AS (
    INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                        created_at)
    SELECT e.event_id, e.topic, run.id::text, e.type, run.company_id, run.id,
           run.last_event_seq - {count} + e.ord,
           e.payload || jsonb_build_object('sequence', run.last_event_seq - {count} + e.ord,
                                           'company_id', run.company_id, 'data', {SUMMARY_SQL}),
           e.traceparent, e.created_at
    FROM run, unnest({ids}::uuid[], {topics}::text[], {types}::text[], {bodies}::jsonb[],
                     {parents}::text[], {times}::timestamptz[])
              WITH ORDINALITY AS e (event_id, topic, type, payload, traceparent, created_at, ord)
)
SELECT {RUN_COLUMNS}{notified} FROM run
"""


async def transition(
    conn: Connection, sql: str, run_id: UUID, args: Sequence[object], events: Sequence[EventType]
) -> Run | None:
    """Run a `transition_sql` statement: the updated run, or None when its guard matched nothing
    (nothing changed, nothing announced)."""
    placeholder = _placeholder(run_id)
    built = outbox.unnumbered_run_events(run_id, [(type, placeholder) for type in events])
    record = await conn.fetchrow(sql, run_id, *args, *outbox.run_event_columns(built))
    return None if record is None else run_from_record(record, extra=("notified",))


def _placeholder(run_id: UUID) -> RunSummary:
    """Stands in for `data` until the statement puts the updated row's summary there."""
    status: RunStatus = "queued"
    queue_status: QueueStatus = "pending"
    return RunSummary(
        id=run_id,
        case_id=None,
        suite_id=None,
        suite_run_id=None,
        status=status,
        queue_status=queue_status,
        termination_reason=None,
        score=None,
        pass_fail=None,
        total_cost_cents=0,
        error_code=None,
    )
