"""Runs handed straight to an in-process `Executor`, as the consumer loop would hand them: a
scripted case, its run triggered, and the run request the executor receives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from consumers.executor.conversation import Engine
from consumers.executor.worker import Executor, build_engine
from consumers.role import RoleContext
from schemas.events import Event, decode_event
from service.bus.memory import InProcessBus
from service.core.settings import Settings
from service.db import claims
from service.db.claims import Lease
from service.db.postgres import Pool, connection
from tests.support.factories import make_company
from tests.support.scenarios import make_case, scripted_agent, scripted_persona, trigger
from tests.support.waiting import eventually

LONG_TALK = scripted_persona([f"line {i}" for i in range(12)])
ECHO_AGENT = scripted_agent(greeting_message=None, rules=[{"when": ".", "say": "Right."}], tools=[])


async def claimed_by(pool: Pool, run_id: UUID, executor: str) -> Lease:
    """Claim the run for `executor` (as its run request would), and the lease it holds."""
    async with connection(pool) as conn:
        run = await claims.claim_run(conn, run_id, executor, 60, 3)
    assert run is not None
    return Lease(run_id, executor, run.attempt)


def make_engine(settings: Settings, pool: Pool) -> Engine:
    return build_engine(RoleContext(settings=settings, pool=pool, bus=InProcessBus()))


@asynccontextmanager
async def engine_of(settings: Settings, pool: Pool) -> AsyncIterator[Engine]:
    """An engine whose model and tool clients are closed on the way out."""
    built = make_engine(settings, pool)
    try:
        yield built
    finally:
        await built.tools.close()
        await built.providers.close()


async def played_to_the_end(executor: Executor, pool: Pool, run_id: UUID) -> None:
    """Hand the run to `executor`, wait until it plays nothing, and close it."""
    await executor.handle(await run_request(pool, run_id))
    await eventually(lambda: asyncio.sleep(0, executor.playing()), until=lambda p: not p, what="the end")
    await executor.close()


async def lock_waiters(pool: Pool, query_like: str = "%") -> int:
    """Sessions waiting for a lock inside PostgreSQL, running a statement LIKE `query_like`."""
    async with connection(pool) as conn:
        waiting: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE $1",
            query_like,
        )
    return waiting


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
