"""One round of a conversation persisted in one statement (one round trip): the run row
advanced under the lease's fence, the transcript rows, and their `run.turn` events.

On its own (autocommit) it serves the common round: the lease still holds, no cancel was
requested, and the conversation goes on; otherwise it writes nothing and returns None. Inside a
transaction, without the cancel condition, it starts the round that ends the run: the caller
reads whether a cancel was requested and ends the run before committing
(`consumers.persistence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas.events import EventType
from service.db import outbox, turns
from service.db.claims import Lease
from service.db.core import Connection

_PERSIST_ROUND = """
WITH run AS (
    UPDATE eval_runs
    SET active_ms = greatest(active_ms, $4), last_event_seq = last_event_seq + cardinality($5::uuid[]),
        updated_at = now()
    WHERE id = $1 AND claimed_by = $2 AND attempt = $3 AND status = 'running' {unless_cancelled}
    RETURNING company_id, last_event_seq - cardinality($5::uuid[]) AS base, cancel_requested_at
), written AS (
    INSERT INTO eval_run_turns (id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event,
                                model, input_tokens, output_tokens, cost_microcents, rate_card_version,
                                latency_ms, attempt, created_at)
    SELECT t.id, t.run_id, t.turn_number, t.role, t.text, t.tool_calls::jsonb, t.tool_result::jsonb,
           t.flow_event::jsonb, t.model, t.input_tokens, t.output_tokens, t.cost_microcents,
           t.rate_card_version, t.latency_ms, t.attempt, t.created_at
    FROM unnest($11::uuid[], $12::uuid[], $13::int[], $14::text[], $15::text[], $16::text[], $17::text[],
                $18::text[], $19::text[], $20::int[], $21::int[], $22::bigint[], $23::text[], $24::int[],
                $25::int[], $26::timestamptz[])
         AS t (id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event, model, input_tokens,
               output_tokens, cost_microcents, rate_card_version, latency_ms, attempt, created_at)
    WHERE EXISTS (SELECT 1 FROM run)
)
INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                    created_at)
SELECT e.event_id, e.topic, $1::text, e.type, run.company_id, $1, run.base + e.ord,
       e.payload || jsonb_build_object('sequence', run.base + e.ord, 'company_id', run.company_id),
       e.traceparent, e.created_at
FROM run, unnest($5::uuid[], $6::text[], $7::text[], $8::jsonb[], $9::text[], $10::timestamptz[])
          WITH ORDINALITY AS e (event_id, topic, type, payload, traceparent, created_at, ord)
RETURNING sequence, (SELECT cancel_requested_at IS NOT NULL FROM run) AS cancel_requested
"""
_ROUND_UNLESS_CANCELLED = _PERSIST_ROUND.format(unless_cancelled="AND cancel_requested_at IS NULL")
_ROUND = _PERSIST_ROUND.format(unless_cancelled="")


@dataclass(frozen=True)
class Round:
    rows: list[turns.TurnRow]
    cancel_requested: bool


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
        lease.run_id, [(EventType.RUN_TURN, r.to_api()) for r in rows], now=now
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
    return Round(rows, bool(written[0]["cancel_requested"])) if written else None
