"""Creating a run and announcing it (`run.queued`, sequence 1) in one statement: the state and
its event are written atomically without a transaction round trip of their own."""

from __future__ import annotations

from schemas.api import RunSummary
from service.db import outbox
from service.db.postgres import Connection, fetch_one
from service.db.runs import (
    RUN_COLUMNS,
    NewRun,
    RunRow,
    insert_run_sql,
    new_run_values,
    queued_summary,
    run_from_record,
)
from service.domain.lifecycle import TRANSITIONS, Step

_CREATE_RUN = f"""
WITH run AS ({insert_run_sql(last_event_seq=outbox.event_count(16))}),
queued AS ({outbox.events_for_run_sql(16)})
SELECT {RUN_COLUMNS} FROM run
"""


def _summary(new: NewRun) -> RunSummary:
    return queued_summary(
        new.id, case_id=new.case_id, suite_id=new.suite_id, suite_run_id=new.suite_run_id, labels=new.labels
    )


async def create_run(conn: Connection, new: NewRun) -> RunRow:
    """Insert the run with its `run.queued` event (sequence 1)."""
    queued = outbox.unnumbered_run_events(
        new.id, [(event, _summary(new)) for event in TRANSITIONS[Step.CREATED].events]
    )
    record = await fetch_one(conn, _CREATE_RUN, *new_run_values(new), *outbox.run_event_columns(queued))
    return run_from_record(record)
