"""Agents, personas and cases written through the db layer, and runs triggered through the real
trigger path (`service.runs.triggers`), for tests that exercise execution without HTTP."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from schemas.agents import AgentCreate
from schemas.cases import CaseCreate
from schemas.personas import PersonaCreate
from schemas.runs import RunTrigger
from service.core.ids import new_id
from service.core.settings import Settings
from service.db import agents, cases, personas, runs
from service.db.postgres import Pool, connection, transaction
from service.runs.triggers import IdempotencyRequest, trigger_case_run
from tests.support.waiting import eventually

REFUND_RULES: list[dict[str, Any]] = [
    {
        "when": "refund",
        "say": "I have started your refund.",
        "call_tool": {"name": "start_refund", "arguments": {"order": "A-1"}},
    },
    {"when": "bye", "say": "Goodbye!", "end": True},
]
REFUND_TOOL: dict[str, Any] = {
    "name": "start_refund",
    "description": "Start a refund",
    "parameters": {"type": "object", "properties": {"order": {"type": "string"}}},
    "output_schema": {"type": "object", "properties": {"refund_id": {"type": "string"}}},
}


@dataclass(frozen=True)
class Scenario:
    company_id: UUID
    case_id: UUID


def scripted_agent(**fields: Any) -> dict[str, Any]:
    """A scripted agent that greets, answers refunds with a tool call, and hangs up on goodbye."""
    agent: dict[str, Any] = {
        "name": "Support bot",
        "system_prompt": "You help customers.",
        "model": "scripted",
        "greeting_message": "Hello, how can I help?",
        "rules": REFUND_RULES,
        "tools": [REFUND_TOOL],
    }
    agent.update(fields)
    return agent


def scripted_persona(
    script: Sequence[str] = ("I want a refund", "Thanks, bye"), **fields: Any
) -> dict[str, Any]:
    persona: dict[str, Any] = {
        "name": "Caller",
        "identity_prompt": "You want a refund.",
        "model": "scripted",
        "script": list(script),
    }
    persona.update(fields)
    return persona


def refund_case_body(agent_id: str, persona_id: str, **case_fields: Any) -> dict[str, Any]:
    """The fields of a refund case of this agent and persona (`case_fields` added or overriding)."""
    return {
        "name": "Refund",
        "scenario": "The caller wants a refund for order A-1.",
        "agent_id": agent_id,
        "persona_id": persona_id,
        **case_fields,
    }


async def make_case(
    pool: Pool,
    company_id: UUID,
    *,
    agent: dict[str, Any] | None = None,
    persona: dict[str, Any] | None = None,
    **case_fields: Any,
) -> UUID:
    """An agent, a persona and a case of them (scripted refund conversation by default)."""
    async with transaction(pool) as conn:
        saved_agent = await agents.insert_agent(
            conn, new_id(), company_id, AgentCreate.model_validate_json(json.dumps(agent or scripted_agent()))
        )
        saved_persona = await personas.insert_persona(
            conn,
            new_id(),
            company_id,
            PersonaCreate.model_validate_json(json.dumps(persona or scripted_persona())),
        )
        body = refund_case_body(str(saved_agent.id), str(saved_persona.id), **case_fields)
        case = await cases.insert_case(
            conn,
            new_id(),
            company_id,
            agent_id=saved_agent.id,
            persona_id=saved_persona.id,
            fields=CaseCreate.model_validate_json(json.dumps(body)),
        )
    return case.id


async def trigger(
    pool: Pool,
    settings: Settings,
    company_id: UUID,
    case_id: UUID,
    *,
    body: dict[str, Any] | None = None,
    key: IdempotencyRequest | None = None,
) -> UUID:
    triggered = await trigger_case_run(
        pool,
        settings,
        company_id=company_id,
        case_id=case_id,
        body=RunTrigger.model_validate_json(json.dumps(body or {})),
        key=key,
    )
    return triggered.run_id


async def read_run(pool: Pool, run_id: UUID) -> runs.RunRow:
    async with connection(pool) as conn:
        return await runs.get_run(conn, run_id)


async def finished(pool: Pool, run_id: UUID, timeout_s: float = 30.0) -> runs.RunRow:
    """The run once done (scored and billed, or cancelled before its claim)."""
    return await eventually(
        lambda: read_run(pool, run_id),
        until=lambda r: r.queue_status == "done",
        timeout_s=timeout_s,
        what="run done",
    )


async def event_types(pool: Pool, run_id: UUID) -> list[str]:
    """The run's events in sequence order, without the `agent_eval.run.` prefix."""
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT type FROM outbox WHERE run_id = $1 AND sequence IS NOT NULL ORDER BY sequence", run_id
        )
    return [r["type"].removeprefix("agent_eval.run.") for r in rows]


async def turn_rows(pool: Pool, run_id: UUID) -> list[dict[str, Any]]:
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT turn_number, role, text, tool_calls, tool_result, flow_event, model, input_tokens,"
            " output_tokens, cost_microcents, rate_card_version, attempt, latency_ms"
            " FROM eval_run_turns WHERE run_id = $1"
            " ORDER BY turn_number",
            run_id,
        )
    return [dict(r) for r in rows]


async def charges(pool: Pool, run_id: UUID) -> list[int]:
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT amount_cents FROM credit_ledger WHERE run_id = $1 AND kind = 'eval_run_charge'", run_id
        )
    return [int(r["amount_cents"]) for r in rows]


def cost_cents(rows: list[dict[str, Any]]) -> int:
    """`ceil(Σ cost_microcents / 10⁶)`, in integers."""
    return -(-sum(int(r["cost_microcents"]) for r in rows) // 1_000_000)


async def assert_billed_for_turns(pool: Pool, run: runs.RunRow) -> None:
    """The run's total is the priced cost of its turns, charged once (no row for a zero total)."""
    total = cost_cents(await turn_rows(pool, run.id))
    assert run.total_cost_cents == total
    assert await charges(pool, run.id) == ([-total] if total else [])
