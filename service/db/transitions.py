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

import textwrap
from collections.abc import Sequence
from uuid import UUID

from schemas.api import RunSummary
from schemas.events import EventType
from service.db import outbox
from service.db.postgres import Connection
from service.db.runs import RUN_COLUMNS, RunRow, queued_summary, run_from_record

SUMMARY_SQL = "jsonb_build_object({})".format(
    ", ".join(f"'{name}', run.{name}" for name in RunSummary.model_fields)
)


def transition_sql(set_clause: str, where: str, *, params: int, notify: str | None = None) -> str:
    """The statement for `UPDATE eval_runs SET <set_clause> WHERE id = $1 AND <where>` (its own
    parameters are $1..$params) plus its events; with `notify`, NOTIFY that channel with the id."""
    notified = f", pg_notify('{notify}', run.id::text) AS notified" if notify else ""
    sets = f"{set_clause}, last_event_seq = last_event_seq + {outbox.event_count(params + 1)}"
    return f"""
WITH run AS (
    UPDATE eval_runs
    SET {_wrapped(sets)}
    WHERE id = $1 AND {_wrapped(where)}
    RETURNING {_wrapped(RUN_COLUMNS)}
), announced AS ({outbox.events_for_run_sql(params + 1, data=SUMMARY_SQL)})
SELECT {_wrapped(RUN_COLUMNS + notified, indent=7)}
FROM run
"""


def _wrapped(text: str, indent: int = 8) -> str:
    """Long clauses over several lines, so the rendered statement reads well in review (the
    clauses hold no string literals with spaces, so only whitespace between tokens changes)."""
    return textwrap.fill(
        text, width=100, subsequent_indent=" " * indent, break_long_words=False, break_on_hyphens=False
    )


async def transition(
    conn: Connection, sql: str, run_id: UUID, args: Sequence[object], events: Sequence[EventType]
) -> RunRow | None:
    """RunRow a `transition_sql` statement: the updated run, or None when its guard matched nothing
    (nothing changed, nothing announced)."""
    record = await conn.fetchrow(sql, *_arguments(run_id, args, events))
    return None if record is None else run_from_record(record, extra=("notified",))


async def transition_many(
    conn: Connection, sql: str, changes: Sequence[tuple[UUID, Sequence[object], Sequence[EventType]]]
) -> dict[UUID, RunRow]:
    """Run a `transition_sql` statement for each (run id, args, events), in the given order, in one
    round trip (pipelined): the updated runs by id; a run whose guard matched nothing is absent."""
    if not changes:
        return {}
    records = await conn.fetchmany(sql, [_arguments(*change) for change in changes])
    return {row.id: row for row in (run_from_record(r, extra=("notified",)) for r in records)}


def _arguments(run_id: UUID, args: Sequence[object], events: Sequence[EventType]) -> tuple[object, ...]:
    """A transition statement's parameters: the run, its own, then its events' columns."""
    placeholder = queued_summary(run_id)  # stands in for `data`: the statement puts the row's summary there
    built = outbox.unnumbered_run_events(run_id, [(type, placeholder) for type in events])
    return (run_id, *args, *outbox.run_event_columns(built))
