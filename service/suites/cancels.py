"""Cancelling a suite run: every run not over yet is cancelled with the run cancel contract
(held and pending runs at once, running ones at their next turn boundary); runs already over
keep their results."""

from __future__ import annotations

from uuid import UUID

from service.core.settings import Settings
from service.db import suite_runs
from service.db.postgres import Pool, transaction
from service.domain.lifecycle import is_terminal
from service.runs.cancels import cancel_run


async def cancel_suite_run(
    pool: Pool, settings: Settings, *, company_id: UUID, suite_id: UUID, suite_run_id: UUID
) -> None:
    async with transaction(pool) as conn:
        await suite_runs.request_cancel(conn, company_id, suite_id, suite_run_id)
        members = await suite_runs.list_members(conn, suite_run_id)
    for member in members:
        if not is_terminal(member.status):
            await cancel_run(pool, settings, company_id=company_id, run_id=member.id, key=None)
