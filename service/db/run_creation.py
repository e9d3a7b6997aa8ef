"""Creating a run and announcing it (`run.queued`, sequence 1) in one statement: the state and
its event are written atomically without a transaction round trip of their own."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.api import RunSummary
from schemas.events import EventType
from service.db import outbox
from service.db.core import Connection
from service.db.runs import RUN_COLUMNS, NewRun, Run, run_from_record

_CREATE_RUN = f"""
WITH run AS (
    INSERT INTO eval_runs (id, company_id, case_id, suite_id, suite_run_id, agent_id, persona_id, config,
                           agent_overrides, labels, released_at, position, agent_model, persona_model,
                           last_event_seq)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $11 THEN now() END, $12, $13, $14, 1)
    RETURNING {RUN_COLUMNS}
), queued AS (
    INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                        created_at)
    SELECT $15, $16, $1::text, $17, $2, $1, 1, $18, $19, $20 FROM run
)
SELECT {RUN_COLUMNS} FROM run
"""


def queued_summary(new: NewRun) -> RunSummary:
    """What a new run looks like: queued, pending, nothing scored or spent."""
    return RunSummary(
        id=new.id,
        case_id=new.case_id,
        suite_id=new.suite_id,
        suite_run_id=new.suite_run_id,
        status="queued",
        queue_status="pending",
        termination_reason=None,
        score=None,
        pass_fail=None,
        total_cost_cents=0,
        error_code=None,
        labels=new.labels,
    )


async def create_run(conn: Connection, new: NewRun) -> Run:
    """Insert the run (queued, pending) with its `run.queued` event."""
    now = datetime.now(UTC)
    (event,) = outbox.numbered(
        outbox.unnumbered_run_events(new.id, [(EventType.RUN_QUEUED, queued_summary(new))], now=now),
        new.company_id,
        [1],
    )
    event_id, topic, type_, payload, traceparent, created_at = (
        column[0] for column in outbox.run_event_columns([event])
    )
    record = await conn.fetchrow(
        _CREATE_RUN,
        new.id,
        new.company_id,
        new.case_id,
        new.suite_id,
        new.suite_run_id,
        new.agent_id,
        new.persona_id,
        new.config,
        new.agent_overrides,
        new.labels,
        new.released,
        new.position,
        new.agent_model,
        new.persona_model,
        event_id,
        topic,
        type_,
        payload,
        traceparent,
        created_at,
    )
    assert record is not None  # INSERT … RETURNING always returns the row
    return run_from_record(record)
