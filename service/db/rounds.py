"""One round of a conversation persisted in one statement (one round trip): the run row
advanced under the lease's fence, the transcript rows, and their `run.turn` events.

`persist_rounds` writes the common rounds of several runs in one statement (the executor's group
commit: one round trip and one commit for every conversation that finished a round meanwhile).

On its own (autocommit) it serves the common round: the lease still holds, no cancel was
requested, and the conversation goes on; otherwise it writes nothing and returns None. Inside a
transaction, without the cancel condition, it starts the round that ends the run: the caller
reads whether a cancel was requested and ends the run before committing
(`consumers.executor.persistence`).
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


def _round_sql(guard: str) -> str:
    """The round statement; `guard` adds to the fence (the cancel condition, or nothing)."""
    return f"""
WITH run AS (
    UPDATE eval_runs
    SET active_ms = greatest(active_ms, $4), last_event_seq = last_event_seq + {outbox.event_count(5)},
        updated_at = now()
    WHERE id = $1 AND claimed_by = $2 AND attempt = $3 AND status = {states.RUNNING} {guard}
    RETURNING id, company_id, last_event_seq, cancel_requested_at
), written AS (
    {_insert_turns(11)}    WHERE EXISTS (SELECT 1 FROM run)
)
{outbox.events_for_run_sql(5)}
RETURNING sequence, (SELECT cancel_requested_at IS NOT NULL FROM run) AS cancel_requested,
          (SELECT company_id FROM run) AS company_id
"""


_ROUND_UNLESS_CANCELLED = _round_sql("AND cancel_requested_at IS NULL")
_ROUND = _round_sql("")


@dataclass(frozen=True)
class Round:
    rows: list[turns.TurnRow]
    cancel_requested: bool
    company_id: UUID  # the run's


async def persist_round(
    conn: Connection,
    lease: Lease,
    new: Sequence[turns.NewTurn],
    *,
    active_ms: int,
    now: datetime,
    unless_cancelled: bool = True,
) -> Round | None:
    """Write the round's rows and events if the lease holds (and, with `unless_cancelled`, no
    cancel was requested); None when nothing was written. Inside a transaction, the run row
    stays locked until the caller commits, so it can end the run in the same transaction."""
    rows = turns.stamped(new, now)
    events = outbox.unnumbered_run_events(
        lease.run_id, [(event, r.to_api()) for r in rows for event in TRANSITIONS[Step.TURN].events], now=now
    )
    written = await conn.fetch(
        _ROUND_UNLESS_CANCELLED if unless_cancelled else _ROUND,
        lease.run_id,
        lease.executor,
        lease.attempt,
        active_ms,
        *outbox.run_event_columns(events),
        *turns.turn_columns(rows),
    )
    if not written:
        return None
    return Round(rows, bool(written[0]["cancel_requested"]), written[0]["company_id"])


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
# fence fails (lease lost, cancel requested, ended) is skipped and its rows are not written.
_ROUNDS = f"""
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::int[])
        AS i (run_id, executor, attempt, active_ms, events)
), locked AS MATERIALIZED (
    SELECT r.id FROM input AS i
    CROSS JOIN LATERAL (
        SELECT id FROM eval_runs
        WHERE id = i.run_id AND claimed_by = i.executor AND attempt = i.attempt
          AND status = {states.RUNNING} AND cancel_requested_at IS NULL
        LIMIT 1 FOR NO KEY UPDATE
    ) AS r
), run AS (
    UPDATE eval_runs AS r
    SET active_ms = greatest(r.active_ms, i.active_ms), last_event_seq = r.last_event_seq + i.events,
        updated_at = now()
    FROM input AS i, locked AS l
    WHERE r.id = i.run_id AND l.id = r.id  -- locked under the fence in this statement: it still holds
    RETURNING r.id, r.company_id, r.last_event_seq, i.events
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
SELECT id, company_id FROM run
"""


async def persist_rounds(conn: Connection, pending: Sequence[PendingRound]) -> dict[UUID, Round]:
    """Write several runs' common rounds in one statement (autocommit: one commit for all); the
    result has a Round for each run whose lease held and had no cancel requested, none for the
    others (nothing of theirs was written). Each run appears at most once in `pending`."""
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
        _ROUNDS,
        *runs,
        owners,
        ords,
        *outbox.run_event_columns(every_event),
        *turns.turn_columns(every_row),
    )
    return {r["id"]: Round(rows[r["id"]], False, r["company_id"]) for r in written}


def _turn_events(run_id: UUID, rows: Sequence[turns.TurnRow], now: datetime) -> list[Event]:
    return outbox.unnumbered_run_events(
        run_id, [(event, r.to_api()) for r in rows for event in TRANSITIONS[Step.TURN].events], now=now
    )
