"""Rows for tests, written through the db layer (never raw INSERTs that could drift from it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from uuid import UUID

from pydantic import JsonValue

from schemas.api import TurnRole
from schemas.runs import RunConfig
from service.core.ids import new_id
from service.db import companies, ledger, runs
from service.db import turns as turns_db
from service.db.postgres import Pool, transaction


async def make_company(pool: Pool, *, name: str = "Acme", balance_cents: int = 0) -> companies.CompanyRow:
    async with transaction(pool) as conn:
        company = await companies.insert_company(conn, new_id(), name)
        if balance_cents:
            await ledger.post_ledger_entry(
                conn, entry_id=new_id(), company_id=company.id, kind="grant", amount_cents=balance_cents
            )
        return await companies.get_company(conn, company.id)


async def make_run(
    pool: Pool, company_id: UUID, *, labels: dict[str, str] | None = None, released: bool = True
) -> runs.RunRow:
    new = runs.NewRun(
        id=new_id(),
        company_id=company_id,
        config={"case": {"name": "t"}},
        labels=labels or {},
        released=released,
    )
    async with transaction(pool) as conn:
        return await runs.insert_run(conn, new)


def run_config(
    criteria: Sequence[Mapping[str, object]] = (),
    *,
    pass_threshold: float = 80.0,
    agent_type: str = "prompt",
) -> dict[str, JsonValue]:
    """A run's config snapshot (RunConfig) around a case with these success criteria."""
    now = datetime.now(UTC).isoformat()
    ids = {"id": str(new_id()), "company_id": str(new_id()), "created_at": now, "updated_at": now}
    agent: dict[str, object] = {**ids, "name": "Agent", "system_prompt": "You help.", "type": agent_type}
    if agent_type == "flow":
        agent["flow_config"] = {"nodes": [{"id": "start", "type": "start"}]}
    persona = {**ids, "name": "Caller", "identity_prompt": "You call."}
    case = {
        **ids,
        "name": "Case",
        "scenario": "A scenario.",
        "agent_id": agent["id"],
        "persona_id": persona["id"],
        "success_criteria": list(criteria),
        "pass_threshold": pass_threshold,
        "agent": agent,
        "persona": persona,
    }
    config: dict[str, JsonValue] = RunConfig.model_validate({"case": case}).model_dump(mode="json")
    return config


async def make_finished_run(
    pool: Pool,
    company_id: UUID,
    *,
    status: str = "completed",
    criteria: Sequence[Mapping[str, object]] = (),
    turns: Sequence[tuple[TurnRole, str | None, int]] = (),
    pass_threshold: float = 80.0,
    agent_type: str = "prompt",
) -> runs.RunRow:
    """A run whose conversation is over: `turns` are (role, text, cost_microcents) rows."""
    config = run_config(criteria, pass_threshold=pass_threshold, agent_type=agent_type)
    new = runs.NewRun(id=new_id(), company_id=company_id, config=config)
    reason = {"completed": "persona_goodbye", "failed": "error", "cancelled": "cancelled"}[status]
    async with transaction(pool) as conn:
        run = await runs.insert_run(conn, new)
        for number, (role, text, cost) in enumerate(turns, start=1):
            await turns_db.insert_turn(
                conn,
                turns_db.NewTurn(
                    id=new_id(),
                    run_id=run.id,
                    turn_number=number,
                    role=role,
                    text=text,
                    input_tokens=10,
                    output_tokens=5,
                    cost_microcents=cost,
                ),
            )
        await conn.execute(
            "UPDATE eval_runs SET status = $2, termination_reason = $3, queue_status = 'claimed',"
            " claimed_by = 'test', attempt = 1, lease_expires_at = now() + interval '1 minute',"
            " started_at = now(), ended_at = now() WHERE id = $1",
            run.id,
            status,
            reason,
        )
        return await runs.get_run(conn, run.id)
