"""Rounds of conversations persisted in one statement (one round trip): each run row advanced
under its lease's fence, the transcript rows, and their `run.turn` events.

`persist_rounds` writes the rounds of several runs at once: on its own (autocommit), the
common rounds, for the runs whose lease still holds and that have no cancel requested (the
executor's group commit: one round trip and one commit for every conversation that finished a
round meanwhile); inside a transaction, without the cancel condition, the rounds that end runs,
whose rows stay locked while the caller ends them (`consumers.executor.endings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from schemas.events import Event
from service.db import outbox, states, turns
from service.db.claims import Lease
from service.db.postgres import Connection
from service.domain.lifecycle import TRANSITIONS, Step


def _insert_turns(first: int) -> str:
    """`INSERT INTO eval_run_turns … FROM unnest(…)` of `turns.turn_columns` in `$first`..`$first+15`
    (the caller adds the WHERE that ties the rows to the runs it advanced)."""
    types = ["uuid", "uuid", "int", "text", "text", "text", "text", "text", "text", "int", "int", "bigint"]
    arrays = ", ".join(
        f"${first + i}::{t}[]" for i, t in enumerate([*types, "text", "int", "int", "timestamptz"])
    )
    return f"""INSERT INTO eval_run_turns (id, run_id, turn_number, role, text, tool_calls, tool_result,
                                flow_event, model, input_tokens, output_tokens, cost_microcents,
                                rate_card_version, latency_ms, attempt, created_at)
    SELECT t.id, t.run_id, t.turn_number, t.role, t.text, t.tool_calls::jsonb, t.tool_result::jsonb,
           t.flow_event::jsonb, t.model, t.input_tokens, t.output_tokens, t.cost_microcents,
           t.rate_card_version, t.latency_ms, t.attempt, t.created_at
    FROM unnest({arrays})
         AS t (id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event, model, input_tokens,
               output_tokens, cost_microcents, rate_card_version, latency_ms, attempt, created_at)
"""


@dataclass(frozen=True)
class Round:
    rows: list[turns.TurnRow]
    cancel_requested: bool
    company_id: UUID  # the run's


@dataclass(frozen=True)
class PendingRound:
    """One run's common round, waiting to be written with others."""

    lease: Lease
    new: Sequence[turns.NewTurn]
    active_ms: int
    now: datetime


# Rows are locked in id order (as the lease keeper locks them), so a batch never deadlocks with
# another batch or with the keeper: `persist_rounds` passes the runs sorted, and each is looked up
# and locked by its key in that order (the `LIMIT` keeps the look-up a subquery; as a join, the
# planner could read every running run, or the whole table, to find the batch's). A run whose
# fence fails (lease lost, ended, or with the cancel condition a cancel requested) is skipped and
# its rows are not written.
def _rounds_sql(guard: str) -> str:
    """The batched round statement; `guard` adds to each run's fence (the cancel condition, or
    nothing)."""
    return f"""
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::int[])
        AS i (run_id, executor, attempt, active_ms, events)
), locked AS MATERIALIZED (
    SELECT r.id FROM input AS i
    CROSS JOIN LATERAL (
        SELECT id FROM eval_runs
        WHERE id = i.run_id AND claimed_by = i.executor AND attempt = i.attempt
          AND status = {states.RUNNING} {guard}
        LIMIT 1 FOR NO KEY UPDATE
    ) AS r
), run AS (
    UPDATE eval_runs AS r
    SET active_ms = greatest(r.active_ms, i.active_ms), last_event_seq = r.last_event_seq + i.events,
        updated_at = now()
    FROM input AS i, locked AS l
    WHERE r.id = i.run_id AND l.id = r.id  -- locked under the fence in this statement: it still holds
    RETURNING r.id, r.company_id, r.last_event_seq, i.events, r.cancel_requested_at
), written AS (
    {_insert_turns(14)}    WHERE t.run_id IN (SELECT id FROM run)
), events AS (
    INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                        created_at)
    SELECT e.event_id, e.topic, run.id::text, e.type, run.company_id, run.id,
           run.last_event_seq - run.events + e.ord,
           e.payload || jsonb_build_object('sequence', run.last_event_seq - run.events + e.ord,
                                           'company_id', run.company_id),
           e.traceparent, e.created_at
    FROM unnest($6::uuid[], $7::int[], $8::uuid[], $9::text[], $10::text[], $11::jsonb[], $12::text[],
                $13::timestamptz[])
         AS e (run_id, ord, event_id, topic, type, payload, traceparent, created_at)
    JOIN run ON run.id = e.run_id
)
SELECT id, company_id, cancel_requested_at IS NOT NULL AS cancel_requested FROM run
"""


_ROUNDS_UNLESS_CANCELLED = _rounds_sql("AND cancel_requested_at IS NULL")
_ROUNDS = _rounds_sql("")


async def persist_rounds(
    conn: Connection, pending: Sequence[PendingRound], *, unless_cancelled: bool = True
) -> dict[UUID, Round]:
    """Write several runs' rounds in one statement (autocommit: one commit for all); the result
    has a Round for each run whose lease held (and, with `unless_cancelled`, had no cancel
    requested), none for the others (nothing of theirs was written). Without
    `unless_cancelled`, inside a transaction, it starts the rounds that end runs: each Round says
    whether a cancel was requested, and the run rows stay locked until the caller commits. Each
    run appears at most once in `pending`; one without rows is only advanced (and locked)."""
    pending = sorted(pending, key=lambda p: p.lease.run_id)  # the order its rows are locked in
    rows = {p.lease.run_id: turns.stamped(p.new, p.now) for p in pending}
    events = {p.lease.run_id: _turn_events(p.lease.run_id, rows[p.lease.run_id], p.now) for p in pending}
    runs = [
        [p.lease.run_id for p in pending],
        [p.lease.executor for p in pending],
        [p.lease.attempt for p in pending],
        [p.active_ms for p in pending],
        [len(events[p.lease.run_id]) for p in pending],
    ]
    every_event = [e for run_events in events.values() for e in run_events]
    owners = [run_id for run_id, run_events in events.items() for _ in run_events]
    ords = [i + 1 for run_events in events.values() for i in range(len(run_events))]
    every_row = [r for run_rows in rows.values() for r in run_rows]
    written = await conn.fetch(
        _ROUNDS_UNLESS_CANCELLED if unless_cancelled else _ROUNDS,
        *runs,
        owners,
        ords,
        *outbox.run_event_columns(every_event),
        *turns.turn_columns(every_row),
    )
    return {r["id"]: Round(rows[r["id"]], r["cancel_requested"], r["company_id"]) for r in written}


def _turn_events(run_id: UUID, rows: Sequence[turns.TurnRow], now: datetime) -> list[Event]:
    return outbox.unnumbered_run_events(
        run_id, [(event, r.to_api()) for r in rows for event in TRANSITIONS[Step.TURN].events], now=now
    )
