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
from uuid import UUID

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from schemas.events import EventType, sse_name
from service.core.errors import FieldError, ValidationFailed
from service.db import outbox, runs
from service.db.postgres import connection
from service.domain.lifecycle import is_final
from service.gateway.appkeys import POOL, SETTINGS, STREAMS
from service.gateway.handlers.parsing import path_id
from service.gateway.handlers.responses import principal

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


async def stream_run_events(request: web.Request) -> web.StreamResponse:
    run_id = path_id(request)
    company_id = principal(request).company_id
    after = resume_after(request)
    async with connection(request.app[POOL]) as conn:
        await runs.get_run(conn, run_id, company_id)  # 404 before the stream starts
    streams = request.app[STREAMS]
    response = EventSourceResponse(ping_interval=request.app[SETTINGS].stream_keepalive_s)
    with streams.watch(run_id) as woken:
        await response.prepare(request)
        async with response:  # stops the keep-alive task on the way out
            with contextlib.suppress(ConnectionResetError):
                while not streams.closing and _connected(request, response):
                    woken.clear()
                    after, finished = await _send_new(request, response, run_id, after)
                    if finished:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(woken.wait(), RECHECK_S)
    return response


def _connected(request: web.Request, response: EventSourceResponse) -> bool:
    """False once the client is gone (aiohttp does not cancel a handler whose client left)."""
    transport = request.transport
    return response.is_connected() and transport is not None and not transport.is_closing()


async def _send_new(
    request: web.Request, response: EventSourceResponse, run_id: UUID, after: int
) -> tuple[int, bool]:
    """Send the events after `after`; returns the last sequence sent and whether the stream is
    over (`run.done` sent, or the run is done and nothing more will come)."""
    async with connection(request.app[POOL]) as conn:
        progress = await runs.fetch_progress(conn, run_id, principal(request).company_id)
        events = await outbox.list_run_events(conn, run_id, after, PAGE)
    for event in events:
        await response.send(event.payload, id=str(event.sequence), event=sse_name(event.type))
        after = event.sequence
        if event.type == EventType.RUN_DONE:
            return after, True
    done = progress is None or is_final(progress[1])
    return after, done and len(events) < PAGE
