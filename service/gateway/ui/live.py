"""The run page, live: its events as Server-Sent Events carrying HTML for htmx to swap in.

`turn` carries a new transcript bubble (appended), `run` the re-rendered summary and verdicts
(after any other event), and `done` ends the stream (htmx closes it: `sse-close="done"`). The
page passes the sequence it was rendered at (`?after=N`, then `Last-Event-ID` on a reconnect),
so no bubble is missed or shown twice. Woken by PostgreSQL like the API's stream (DESIGN.md §1).
"""

from __future__ import annotations

import orjson
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from schemas.api import Turn
from schemas.events import EventType
from service.db import outbox, runs
from service.db.postgres import connection
from service.domain.lifecycle import is_final
from service.gateway.appkeys import POOL, STREAMS
from service.gateway.handlers.parsing import path_id
from service.gateway.handlers.streams import PAGE, resume_after, stream_progress
from service.gateway.ui.access import Viewer, signed_in
from service.gateway.ui.rendering import fragment
from service.gateway.ui.runs import READ
from service.gateway.ui.views import bubble, cost_rows, verdicts
from service.runs.views import run_view


async def run_live(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, READ)
    run_id = path_id(request)
    after = resume_after(request)
    async with connection(request.app[POOL]) as conn:
        await runs.get_run(conn, run_id, viewer.company_id)  # 404 before the stream starts

    async def send_new(response: EventSourceResponse, after: int) -> tuple[int, bool]:
        return await _send(request, response, viewer, after)

    return await stream_progress(request, request.app[STREAMS], run_id, after, send_new)


async def _send(
    request: web.Request, response: EventSourceResponse, viewer: Viewer, after: int
) -> tuple[int, bool]:
    """Send what happened after `after`: a bubble per turn, then one summary for the rest."""
    run_id = path_id(request)
    changed, done = False, False
    while True:
        async with connection(request.app[POOL]) as conn:
            events = await outbox.list_run_events(conn, run_id, after, PAGE)
        for event in events:
            after = event.sequence
            if event.type == EventType.RUN_TURN:
                turn = Turn.model_validate(orjson.loads(event.payload)["data"])
                html = fragment(request, "_turn.html", {"b": bubble(turn)})
                await response.send(html, id=str(after), event="turn")
            else:
                changed, done = True, done or event.type == EventType.RUN_DONE
        if len(events) < PAGE:
            break
    if changed:
        done = await _send_summary(request, response, viewer, after) or done
    if done:
        await response.send("", id=str(after), event="done")
    return after, done


async def _send_summary(
    request: web.Request, response: EventSourceResponse, viewer: Viewer, after: int
) -> bool:
    """Send the re-rendered summary; True when the run is done (nothing more will come)."""
    async with connection(request.app[POOL]) as conn:
        row = await runs.get_run(conn, path_id(request), viewer.company_id)
    run = run_view(row)
    context = {"run": run, "verdicts": verdicts(run), "costs": cost_rows(run)}
    await response.send(fragment(request, "_run_summary.html", context), id=str(after), event="run")
    return is_final(row.queue_status) and row.last_event_seq <= after


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/runs/{id}/live", run_live)
