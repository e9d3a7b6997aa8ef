"""`GET /agent-eval/runs/{id}/events`: a run's lifecycle events as Server-Sent Events.

Each event is sent with `id` = its sequence in the run, `event` = its type without the
`agent_eval.` prefix, and `data` = its JSON body (the same body as the Kafka record and the
outbox row; `run.turn` carries the turn with its text). `Last-Event-ID` (or `?after=N`) resumes
after an event, so a reconnect misses none and repeats none. A comment keeps idle connections
open every 15 s. The stream closes after `run.done`; a finished run replays its events and
closes; a stopping gateway closes every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from uuid import UUID

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from schemas.events import EventType, sse_name
from service.core.errors import FieldError, ValidationFailed
from service.db import outbox, runs, suite_runs
from service.db.postgres import connection
from service.domain.lifecycle import is_final
from service.gateway.appkeys import POOL, SETTINGS, STREAMS, SUITE_STREAMS
from service.gateway.handlers.parsing import path_id
from service.gateway.handlers.responses import principal
from service.gateway.streams import ProgressStreams
from service.runs.suite_completion import summary
from service.suites.views import entry

PAGE = 500
RECHECK_S = 5.0  # a stream re-reads at least this often, whatever the notifications say


def resume_after(request: web.Request) -> int:
    """The sequence to resume after: `Last-Event-ID`, else `?after=`, else 0 (a 400 if not a number)."""
    sources = (
        ("header.Last-Event-ID", request.headers.get("Last-Event-ID")),
        ("query.after", request.query.get("after")),
    )
    for field, raw in sources:
        value = (raw or "").strip()
        if value:
            if not (value.isascii() and value.isdigit()) or len(value) > 18:
                raise ValidationFailed(fields=[FieldError(field, "must be an event sequence number")])
            return int(value)
    return 0


SendNew = Callable[[EventSourceResponse, int], Awaitable[tuple[int, bool]]]


async def stream_run_events(request: web.Request) -> web.StreamResponse:
    run_id = path_id(request)
    company_id = principal(request).company_id
    after = resume_after(request)
    async with connection(request.app[POOL]) as conn:
        await runs.get_run(conn, run_id, company_id)  # 404 before the stream starts

    async def send_new(response: EventSourceResponse, after: int) -> tuple[int, bool]:
        return await _send_run_events(request, response, run_id, after)

    return await stream_progress(request, request.app[STREAMS], run_id, after, send_new)


async def stream_suite_run_events(request: web.Request) -> web.StreamResponse:
    """Each run's end (`run.done`, `id` = the order it ended in, `data` its flat summary), then
    `suite_run.done` (`id` = total + 1, `data` the final aggregate), then the stream closes."""
    suite_id, suite_run_id = path_id(request), path_id(request, "suite_run_id")
    company_id = principal(request).company_id
    after = resume_after(request)
    async with connection(request.app[POOL]) as conn:
        await suite_runs.get_suite_run(conn, company_id, suite_id, suite_run_id)

    async def send_new(response: EventSourceResponse, after: int) -> tuple[int, bool]:
        return await _send_suite_events(request, response, suite_run_id, after)

    return await stream_progress(request, request.app[SUITE_STREAMS], suite_run_id, after, send_new)


async def stream_progress(
    request: web.Request, streams: ProgressStreams, subject: UUID, after: int, send_new: SendNew
) -> web.StreamResponse:
    response = EventSourceResponse(ping_interval=request.app[SETTINGS].stream_keepalive_s)
    with streams.watch(subject) as woken:
        await response.prepare(request)
        async with response:  # stops the keep-alive task on the way out
            with contextlib.suppress(ConnectionResetError):
                while not streams.closing and _connected(request, response):
                    woken.clear()
                    after, finished = await send_new(response, after)
                    if finished:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(woken.wait(), RECHECK_S)
    return response


def _connected(request: web.Request, response: EventSourceResponse) -> bool:
    """False once the client is gone (aiohttp does not cancel a handler whose client left)."""
    transport = request.transport
    return response.is_connected() and transport is not None and not transport.is_closing()


async def _send_run_events(
    request: web.Request, response: EventSourceResponse, run_id: UUID, after: int
) -> tuple[int, bool]:
    """Send every event after `after`, page by page; returns the last sequence sent and whether
    the stream is over (`run.done` sent, or the run is done and nothing more will come)."""
    while True:
        async with connection(request.app[POOL]) as conn:
            progress = await runs.fetch_progress(conn, run_id, principal(request).company_id)
            events = await outbox.list_run_events(conn, run_id, after, PAGE)
        for event in events:
            await response.send(event.payload, id=str(event.sequence), event=sse_name(event.type))
            after = event.sequence
            if event.type == EventType.RUN_DONE:
                return after, True
        if len(events) < PAGE:
            return after, progress is None or is_final(progress[1])


async def _send_suite_events(
    request: web.Request, response: EventSourceResponse, suite_run_id: UUID, after: int
) -> tuple[int, bool]:
    """Send the runs that ended after the `after`-th, page by page; once all have,
    `suite_run.done`; returns the last id sent and whether the stream is over."""
    company_id = principal(request).company_id
    while True:
        async with connection(request.app[POOL]) as conn:
            row = await suite_runs.get_company_suite_run(conn, company_id, suite_run_id)
            ended = await suite_runs.list_members_done_after(conn, suite_run_id, after, PAGE)
        for member in ended:
            await response.send(entry(member).model_dump_json(), id=str(member.suite_seq), event="run.done")
            after = member.suite_seq or after
        if len(ended) < PAGE:
            break
    if row.done_at is None or after < row.total_runs:
        return after, False
    if after == row.total_runs:
        async with connection(request.app[POOL]) as conn:
            members = await suite_runs.list_members(conn, suite_run_id)
        final = summary(row, members).model_dump_json()
        await response.send(final, id=str(row.total_runs + 1), event=sse_name(EventType.SUITE_RUN_DONE))
    return row.total_runs + 1, True
