"""A scripted eight-question conversation, long enough to interrupt mid-run, and what the tests
that interrupt it share: consumer roles run in the test's own process, and the outbox check."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from consumers.launch import running_role
from consumers.registry import ROLES
from service.bus.kafka import KafkaBus
from service.core.settings import Settings
from service.db.postgres import Pool, connection

LINES = 8
SCRIPT = [f"Question number {i} about my order" for i in range(1, LINES + 1)]
ANSWERS = [f"Answer number {i}." for i in range(1, LINES + 1)]
RULES: list[dict[str, Any]] = [{"when": f"number {i} ", "say": ANSWERS[i - 1]} for i in range(1, LINES + 1)]


@contextlib.asynccontextmanager
async def consuming(settings: Settings, pool: Pool, kafka: KafkaBus, *names: str) -> AsyncIterator[None]:
    """Run these consumer roles in this process (no relay) until the block ends."""
    roles = [running_role(ROLES[name], settings, pool, kafka, None) for name in names]
    tasks = [
        asyncio.create_task(role.run(), name=f"role-{name}") for role, name in zip(roles, names, strict=True)
    ]
    try:
        for role in roles:
            await asyncio.wait_for(role.runner.started.wait(), 30)
        yield
    finally:
        for role in roles:
            role.request_stop()
        await asyncio.gather(*tasks)


async def all_sent(pool: Pool, run_id: UUID) -> bool:
    """Every outbox row of the run (its run request and its events) is on Kafka."""
    async with connection(pool) as conn:
        sent = await conn.fetchval(
            "SELECT bool_and(p.id IS NULL) FROM outbox AS o LEFT JOIN outbox_pending AS p ON p.id = o.id"
            " WHERE o.run_id = $1",
            run_id,
        )
    return bool(sent)
