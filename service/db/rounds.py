"""One round of a conversation persisted in one statement (one round trip): the run row
advanced under the lease's fence, the transcript rows, and their `run.turn` events.

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

from service.db import outbox, states, turns
from service.db.claims import Lease
from service.db.postgres import Connection
from service.domain.lifecycle import TRANSITIONS, Step


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
{outbox.events_for_run_sql(5)}
RETURNING sequence, (SELECT cancel_requested_at IS NOT NULL FROM run) AS cancel_requested
"""


_ROUND_UNLESS_CANCELLED = _round_sql("AND cancel_requested_at IS NULL")
_ROUND = _round_sql("")


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
    return Round(rows, bool(written[0]["cancel_requested"])) if written else None
