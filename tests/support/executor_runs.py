"""Runs handed straight to an in-process `Executor`, as the consumer loop would hand them: a
scripted case, its run triggered, and the run request the executor receives."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from consumers.executor.conversation import Engine
from consumers.executor.worker import build_engine
from consumers.role import RoleContext
from schemas.events import Event, decode_event
from service.bus.memory import InProcessBus
from service.core.settings import Settings
from service.db.postgres import Pool, connection
from tests.support.factories import make_company
from tests.support.scenarios import make_case, scripted_agent, scripted_persona, trigger

LONG_TALK = scripted_persona([f"line {i}" for i in range(12)])
ECHO_AGENT = scripted_agent(greeting_message=None, rules=[{"when": ".", "say": "Right."}], tools=[])


def make_engine(settings: Settings, pool: Pool) -> Engine:
    return build_engine(RoleContext(settings=settings, pool=pool, bus=InProcessBus()))


async def new_run(
    pool: Pool, settings: Settings, persona: dict[str, Any] = LONG_TALK, **case: object
) -> UUID:
    """A triggered run of a scripted case: the persona's lines, each answered "Right."."""
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(pool, company.id, agent=ECHO_AGENT, persona=persona, max_turns=100, **case)
    return await trigger(pool, settings, company.id, case_id)


async def run_request(pool: Pool, run_id: UUID) -> Event:
    """The latest run request written for the run, as the executor receives it."""
    async with connection(pool) as conn:
        payload = await conn.fetchval(
            "SELECT payload::text FROM outbox WHERE run_id = $1 AND type = 'agent_eval.run.requested'"
            " ORDER BY id DESC LIMIT 1",
            run_id,
        )
    return decode_event(payload)
