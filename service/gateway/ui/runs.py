"""Dashboard pages of runs: the list (filters, keyset pages, live statuses) and one run (its
transcript as a conversation, verdicts linked to turns, costs, prompts; cancel and re-run)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from schemas.api import RunStatus
from schemas.runs import RunTrigger
from service.core.errors import Unprocessable
from service.db import cases, run_lists, runs, suites, turns
from service.db.cases import CaseFilters
from service.db.postgres import connection, transaction
from service.gateway.appkeys import POOL, SETTINGS
from service.gateway.handlers.parsing import parse_query, path_id
from service.gateway.ui.access import signed_in
from service.gateway.ui.forms import BlankIsNone
from service.gateway.ui.rendering import render, see_other
from service.gateway.ui.views import bubble, cost_rows, verdicts
from service.runs.cancels import cancel_run
from service.runs.triggers import trigger_case_run
from service.runs.views import run_view

READ, RUN = "agent_eval:read", "agent_eval:run"
PAGE = 50


class RunsQuery(BaseModel):
    """The runs page's filters (a GET form: empty fields mean no filter) and its keyset cursor."""

    case_id: Annotated[UUID | None, BlankIsNone] = None
    suite_id: Annotated[UUID | None, BlankIsNone] = None
    suite_run_id: Annotated[UUID | None, BlankIsNone] = None
    status: Annotated[RunStatus | None, BlankIsNone] = None
    label: Annotated[str | None, BlankIsNone] = None  # key=value
    since: Annotated[date | None, BlankIsNone] = None  # created on or after this day (UTC)
    until: Annotated[date | None, BlankIsNone] = None  # created on or before this day (UTC)
    before: Annotated[UUID | None, BlankIsNone] = None  # the last run of the previous page

    def filters(self) -> run_lists.RunFilters:
        key, _, value = (self.label or "").partition("=")
        return run_lists.RunFilters(
            case_id=self.case_id,
            suite_id=self.suite_id,
            suite_run_id=self.suite_run_id,
            status=self.status,
            labels={key.strip(): value.strip()} if key.strip() else {},
            created_after=None if self.since is None else datetime.combine(self.since, time.min, UTC),
            created_before=None
            if self.until is None
            else datetime.combine(self.until + timedelta(days=1), time.min, UTC),
        )

    def as_query(self, **changes: object) -> dict[str, str]:
        values = {**self.model_dump(exclude_none=True), **changes}
        return {name: str(value) for name, value in values.items() if value is not None}


async def runs_page(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, READ)
    query = parse_query(request, RunsQuery)
    async with connection(request.app[POOL]) as conn:
        rows = await run_lists.list_runs_before(
            conn, viewer.company_id, query.filters(), before=query.before, limit=PAGE + 1
        )
        case_list, _ = await cases.list_cases(conn, viewer.company_id, CaseFilters(), limit=100, offset=0)
        suite_list, _ = await suites.list_suites(conn, viewer.company_id, limit=100, offset=0)
    shown = rows[:PAGE]
    older = f"/ui/runs?{urlencode(query.as_query(before=shown[-1].id))}" if len(rows) > PAGE else None
    context = {
        "runs": shown,
        "query": query,
        "older": older,
        "rows_url": f"/ui/runs?{urlencode({**query.as_query(), 'rows': '1'})}",
        "newest": f"/ui/runs?{urlencode(query.as_query(before=None))}",
        "cases": case_list,
        "suites": suite_list,
        "live": query.before is None,
        "statuses": ["queued", "running", "completed", "failed", "cancelled"],
    }
    template = "_run_rows.html" if request.query.get("rows") == "1" else "runs.html"
    return render(request, template, context)


async def run_page(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, READ)
    run_id = path_id(request)
    async with transaction(request.app[POOL], snapshot=True) as conn:  # the turns and the sequence agree
        row = await runs.get_run(conn, run_id, viewer.company_id)
        rows = await turns.list_turns(conn, run_id)
    run = run_view(row)
    context = {
        "run": run,
        "bubbles": [bubble(t.to_api()) for t in rows],
        "verdicts": verdicts(run),
        "costs": cost_rows(run),
        "after": row.last_event_seq,
        "may_run": viewer.may(RUN),
    }
    return render(request, "run.html", context)


async def cancel(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, RUN)
    run_id = path_id(request)
    settings = request.app[SETTINGS]
    await cancel_run(request.app[POOL], settings, company_id=viewer.company_id, run_id=run_id, key=None)
    return see_other(f"/ui/runs/{run_id}")


async def rerun(request: web.Request) -> web.StreamResponse:
    """Run the case again with the same overrides and labels (the case as it is now)."""
    viewer = await signed_in(request, RUN)
    run_id = path_id(request)
    async with connection(request.app[POOL]) as conn:
        row = await runs.get_run(conn, run_id, viewer.company_id)
    if row.case_id is None:
        raise Unprocessable("This run's case was deleted; there is nothing to run again")
    run = run_view(row)
    body = RunTrigger(agent_overrides=run.agent_overrides, labels=run.labels)
    triggered = await trigger_case_run(
        request.app[POOL],
        request.app[SETTINGS],
        company_id=viewer.company_id,
        case_id=row.case_id,
        body=body,
        key=None,
    )
    return see_other(f"/ui/runs/{triggered.run_id}")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/runs", runs_page)
    router.add_get("/ui/runs/{id}", run_page)
    router.add_post("/ui/runs/{id}/cancel", cancel)
    router.add_post("/ui/runs/{id}/rerun", rerun)
