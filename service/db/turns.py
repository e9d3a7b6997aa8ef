"""Transcript rows (`eval_run_turns`): one per persona/agent message, tool result or flow event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

from pydantic import JsonValue

from schemas.api import ToolCall, Turn, TurnRole
from service.db.postgres import Connection, Record, dumps, fetch_one
from service.domain.pricing import cents_up
from service.domain.transcript import ToolCallRecord, TranscriptTurn


@dataclass(frozen=True)
class TurnRow:
    """One `eval_run_turns` row."""

    id: UUID
    run_id: UUID
    turn_number: int
    role: TurnRole
    text: str | None
    tool_calls: list[dict[str, JsonValue]] | None
    tool_result: dict[str, JsonValue] | None
    flow_event: dict[str, JsonValue] | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cost_microcents: int
    rate_card_version: str | None
    latency_ms: int | None
    attempt: int
    created_at: datetime

    def to_api(self) -> Turn:
        """The turn as `GET …/turns` and the `run.turn` event show it."""
        return Turn(
            id=self.id,
            run_id=self.run_id,
            turn_number=self.turn_number,
            created_at=self.created_at,
            role=self.role,
            text=self.text,
            tool_calls=None
            if self.tool_calls is None
            else [ToolCall.model_validate(c) for c in self.tool_calls],
            tool_result=self.tool_result,
            flow_event=self.flow_event,
            model=self.model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_microcents=self.cost_microcents,
            cost_cents=cents_up(self.cost_microcents),
            rate_card_version=self.rate_card_version,
            latency_ms=self.latency_ms,
        )


TURN_COLUMNS = ", ".join(f.name for f in fields(TurnRow))


@dataclass(frozen=True)
class NewTurn:
    """A transcript row to persist; the executor prices it before writing."""

    id: UUID
    run_id: UUID
    turn_number: int
    role: TurnRole
    text: str | None = None
    tool_calls: list[dict[str, JsonValue]] | None = None
    tool_result: dict[str, JsonValue] | None = None
    flow_event: dict[str, JsonValue] | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_microcents: int = 0
    rate_card_version: str | None = None
    latency_ms: int | None = None
    attempt: int = 1


_INSERT_TURN = f"""
INSERT INTO eval_run_turns (id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event, model,
                            input_tokens, output_tokens, cost_microcents, rate_card_version, latency_ms,
                            attempt)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
RETURNING {TURN_COLUMNS}
"""
_INSERT_TURNS = """
INSERT INTO eval_run_turns (id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event, model,
                            input_tokens, output_tokens, cost_microcents, rate_card_version, latency_ms,
                            attempt, created_at)
SELECT id, run_id, turn_number, role, text, tool_calls::jsonb, tool_result::jsonb, flow_event::jsonb, model,
       input_tokens, output_tokens, cost_microcents, rate_card_version, latency_ms, attempt, created_at
FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::int[], $11::int[], $12::bigint[], $13::text[], $14::int[], $15::int[],
            $16::timestamptz[])
     AS t (id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event, model, input_tokens,
           output_tokens, cost_microcents, rate_card_version, latency_ms, attempt, created_at)
"""
_JSON_COLUMNS = frozenset({"tool_calls", "tool_result", "flow_event"})
_SELECT_TURNS = f"SELECT {TURN_COLUMNS} FROM eval_run_turns WHERE run_id = $1 ORDER BY turn_number"


def turn_from_record(record: Record) -> TurnRow:
    return TurnRow(**dict(record))


async def insert_turn(conn: Connection, new: NewTurn) -> TurnRow:
    """Persist one transcript row; a taken `(run_id, turn_number)` raises ConstraintViolation."""
    record = await fetch_one(
        conn,
        _INSERT_TURN,
        new.id,
        new.run_id,
        new.turn_number,
        new.role,
        new.text,
        new.tool_calls,
        new.tool_result,
        new.flow_event,
        new.model,
        new.input_tokens,
        new.output_tokens,
        new.cost_microcents,
        new.rate_card_version,
        new.latency_ms,
        new.attempt,
    )
    return turn_from_record(record)


async def insert_turns(conn: Connection, new: Sequence[NewTurn], created_at: datetime) -> list[TurnRow]:
    """Persist several rows in one statement, stamped `created_at`."""
    rows = stamped(new, created_at)
    await conn.execute(_INSERT_TURNS, *turn_columns(rows))
    return rows


def stamped(new: Sequence[NewTurn], created_at: datetime) -> list[TurnRow]:
    """The rows as they will be stored."""
    return [
        TurnRow(**{f.name: getattr(t, f.name) for f in fields(NewTurn)}, created_at=created_at) for t in new
    ]


def turn_columns(rows: Sequence[TurnRow]) -> list[list[object]]:
    """One array per column, in TURN_COLUMNS order (JSON documents as text)."""
    return [
        [
            _json_text(getattr(row, f.name)) if f.name in _JSON_COLUMNS else getattr(row, f.name)
            for row in rows
        ]
        for f in fields(TurnRow)
    ]


def _json_text(value: JsonValue) -> str | None:
    """JSON documents travel as text in arrays (a list would become another array dimension)."""
    return None if value is None else dumps(value)


async def list_turns(conn: Connection, run_id: UUID) -> list[TurnRow]:
    """Every transcript row of a run, in turn order."""
    return [turn_from_record(r) for r in await conn.fetch(_SELECT_TURNS, run_id)]


@dataclass(frozen=True)
class RoleUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_microcents: int = 0


_USAGE_OF_RUNS = """
SELECT run_id, CASE WHEN role = 'flow_event' THEN 'agent' ELSE role END AS role,
       sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
       sum(cost_microcents)::bigint AS cost_microcents
FROM eval_run_turns WHERE run_id = ANY($1::uuid[]) GROUP BY 1, 2
"""


async def usage_by_role_of_runs(
    conn: Connection, run_ids: Sequence[UUID]
) -> dict[UUID, dict[str, RoleUsage]]:
    """Tokens and exact cost of each run's persisted turns, by role (roles without turns absent, a
    run without turns an empty mapping), in one query; a flow's model calls (evaluation steps,
    recorded as flow events) are the agent's."""
    usage: dict[UUID, dict[str, RoleUsage]] = {run_id: {} for run_id in run_ids}
    if run_ids:
        for r in await conn.fetch(_USAGE_OF_RUNS, list(run_ids)):
            usage[r["run_id"]][r["role"]] = RoleUsage(
                int(r["input_tokens"]), int(r["output_tokens"]), int(r["cost_microcents"])
            )
    return usage


def transcript_of(rows: Sequence[TurnRow]) -> list[TranscriptTurn]:
    """Stored rows as the pure transcript scoring and the turn loop reason about."""
    return [
        TranscriptTurn(
            turn_number=row.turn_number,
            role=row.role,
            text=row.text,
            tool_calls=tuple(
                ToolCallRecord(str(c.get("id", "")), str(c.get("name", "")), _arguments(c.get("arguments")))
                for c in row.tool_calls or []
            ),
            tool_result=row.tool_result,
            flow_event=row.flow_event,
        )
        for row in rows
    ]


def _arguments(value: JsonValue) -> dict[str, JsonValue]:
    return value if isinstance(value, dict) else {}
