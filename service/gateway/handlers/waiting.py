"""Answering when a run is done (DESIGN.md §3 Blocking trigger): 200 with the full run if it is
done within the wait, else 202 with the latest run, `Location` and `Retry-After` (2 s while the
conversation runs, 1 s once it is over but not yet scored and billed)."""

from __future__ import annotations

import asyncio
import contextlib
from uuid import UUID

from aiohttp import web

from schemas.api import QueueStatus
from service.core.errors import NotFound
from service.db import runs
from service.db.postgres import connection
from service.domain.lifecycle import is_final, is_terminal
from service.domain.preferences import Wait
from service.gateway.appkeys import CLOCK, POOL, WAITERS
from service.gateway.handlers.responses import json_response
from service.runs.views import run_view


async def answer_when_done(
    request: web.Request, run_id: UUID, company_id: UUID, wait: Wait, *, fresh: bool = False
) -> web.Response:
    """`fresh`: the run was created by this request a moment ago, so it is not done yet."""
    run = await wait_until_done(request, run_id, company_id, wait.seconds, fresh=fresh)
    headers = {"Preference-Applied": wait.applied()} if wait.asked else {}
    if is_final(run.queue_status):
        response = json_response(run_view(run))
    else:
        response = json_response(run_view(run), status=202)
        headers["Location"] = f"/agent-eval/runs/{run.id}"
        headers["Retry-After"] = "1" if is_terminal(run.status) else "2"
    response.headers.update(headers)
    return response


async def wait_until_done(
    request: web.Request, run_id: UUID, company_id: UUID, seconds: float, *, fresh: bool = False
) -> runs.RunRow:
    """The run once done, or as it is when `seconds` pass or the gateway shuts down. While it
    waits, a request holds only an event and the run's two status fields (thousands wait at
    once); the whole run is read once, for the answer."""
    if seconds > 0:
        done = await _wait(request, run_id, company_id, request.app[CLOCK].monotonic() + seconds, fresh=fresh)
        if done is not None:
            return done
    return await _read(request, run_id, company_id)


async def _wait(
    request: web.Request, run_id: UUID, company_id: UUID, deadline: float, *, fresh: bool
) -> runs.RunRow | None:
    """The run, read whole, when a wake-up finds it done; None when it was done before the wait
    began, when the deadline passes or when the gateway shuts down (the caller reads it then).
    A wake-up is a committed "done" (or the safety net's re-read), so the run is read whole at
    once: that read is the answer; one that finds it not done (a stale wake) waits on."""
    waiters = request.app[WAITERS]
    with waiters.watch(run_id) as woken:
        # Read after watching, so no wake-up between the read and the watch is missed. A run
        # this request created a moment ago is not done yet, so it skips the first read (were
        # it done already, the waiters' periodic re-read would still answer it in seconds).
        if not fresh and is_final(await _queue_status(request, run_id, company_id)):
            return None
        while not waiters.closing:
            left = deadline - request.app[CLOCK].monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await woken.wait()
            if not woken.is_set() or waiters.closing:
                continue  # the deadline or the shutdown, seen at the top
            woken.clear()
            run = await _read(request, run_id, company_id)
            if is_final(run.queue_status):
                return run
    return None


async def _queue_status(request: web.Request, run_id: UUID, company_id: UUID) -> QueueStatus:
    async with connection(request.app[POOL]) as conn:
        progress = await runs.fetch_progress(conn, run_id, company_id)
    if progress is None:
        raise NotFound(f"Run {run_id} not found")
    return progress[1]


async def _read(request: web.Request, run_id: UUID, company_id: UUID) -> runs.RunRow:
    async with connection(request.app[POOL]) as conn:
        return await runs.get_run(conn, run_id, company_id)
