"""Answering when a run is done (DESIGN.md §3 Blocking trigger): 200 with the full run if it is
done within the wait, else 202 with the latest run, `Location` and `Retry-After` (2 s while the
conversation runs, 1 s once it is over but not yet scored and billed)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from uuid import UUID

from aiohttp import web

from schemas.api import TERMINAL_STATUSES
from service.db import runs
from service.db.core import connection
from service.domain.preferences import Wait
from service.handlers.responses import json_response
from service.keys import POOL, WAITERS
from service.run_views import run_view


async def answer_when_done(request: web.Request, run_id: UUID, company_id: UUID, wait: Wait) -> web.Response:
    run = await wait_until_done(request, run_id, company_id, wait.seconds)
    headers = {"Preference-Applied": wait.applied()} if wait.asked else {}
    if run.queue_status == "done":
        response = json_response(run_view(run))
    else:
        response = json_response(run_view(run), status=202)
        headers["Location"] = f"/agent-eval/runs/{run.id}"
        headers["Retry-After"] = "1" if run.status in TERMINAL_STATUSES else "2"
    response.headers.update(headers)
    return response


async def wait_until_done(request: web.Request, run_id: UUID, company_id: UUID, seconds: float) -> runs.Run:
    """The run once done, or as it is when `seconds` pass or the gateway shuts down."""
    if seconds <= 0:
        return await _read(request, run_id, company_id)
    waiters = request.app[WAITERS]
    deadline = time.monotonic() + seconds
    with waiters.watch(run_id) as woken:
        run = await _read(request, run_id, company_id)  # read after watching: no wake-up is missed
        while run.queue_status != "done" and not waiters.closing:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), left)
            woken.clear()
            run = await _read(request, run_id, company_id)
    return run


async def _read(request: web.Request, run_id: UUID, company_id: UUID) -> runs.Run:
    async with connection(request.app[POOL]) as conn:
        return await runs.get_run(conn, run_id, company_id)
