"""Dashboard pages of suites: the suites; one suite's runs with their pass rate, its interval and
cost, and a trend chart of both; one suite run's per-case table, its runs, and the regression
diff against a chosen baseline (flips highlighted)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from schemas.suite_runs import SuiteRunTrigger, SuiteRunView
from service.db import suite_runs, suites
from service.db.postgres import connection
from service.gateway.appkeys import POOL, SETTINGS
from service.gateway.handlers.parsing import parse_query, path_id
from service.gateway.ui.access import signed_in
from service.gateway.ui.forms import BlankIsNone
from service.gateway.ui.rendering import render, see_other
from service.gateway.ui.runs import READ, RUN
from service.gateway.ui.trends import TrendPoint, trend
from service.gateway.ui.views import when
from service.suites.compare import compare_with_baseline
from service.suites.triggers import start_suite_run
from service.suites.views import view

SUITES_SHOWN = 100
HISTORY = 30  # suite runs on a suite's page and in its trend
ALPHA = 0.05  # the diff's significance, the API's default


async def suites_page(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, READ)
    async with connection(request.app[POOL]) as conn:
        shown, total = await suites.list_suites(conn, viewer.company_id, limit=SUITES_SHOWN, offset=0)
    return render(request, "suites.html", {"suites": shown, "total": total, "shown_max": SUITES_SHOWN})


async def suite_page(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, READ)
    suite_id = path_id(request)
    async with connection(request.app[POOL]) as conn:
        suite = await suites.get_suite(conn, viewer.company_id, suite_id)
        rows, total = await suite_runs.list_suite_runs(
            conn, viewer.company_id, suite_id, limit=HISTORY, offset=0
        )
        views = [view(row, await suite_runs.list_members(conn, row.id)) for row in rows]
    points = [
        TrendPoint(when(v.created_at), v.statistics.pass_rate, v.total_cost_cents) for v in reversed(views)
    ]
    context = {
        "suite": suite,
        "views": views,
        "total": total,
        "chart": trend(points),
        "may_run": viewer.may(RUN),
    }
    return render(request, "suite.html", context)


class DiffQuery(BaseModel):
    """`?baseline=<suite run id>|latest` (empty: no diff)."""

    baseline: Annotated[UUID | Literal["latest"] | None, BlankIsNone] = None


async def suite_run_page(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, READ)
    suite_id, suite_run_id = path_id(request), path_id(request, "suite_run_id")
    query = parse_query(request, DiffQuery)
    async with connection(request.app[POOL]) as conn:
        row = await suite_runs.get_suite_run(conn, viewer.company_id, suite_id, suite_run_id)
        members = await suite_runs.list_members(conn, row.id)
        current = view(row, members)
        others, _ = await suite_runs.list_suite_runs(
            conn, viewer.company_id, suite_id, limit=HISTORY, offset=0
        )
        diff = (
            None
            if query.baseline is None
            else await compare_with_baseline(conn, viewer.company_id, (row, members), query.baseline, ALPHA)
        )
    context = {
        "suite_id": suite_id,
        "current": current,
        "baselines": [o for o in others if o.id != suite_run_id],
        "chosen": "" if query.baseline is None else str(query.baseline),
        "diff": diff,
        "case_names": _case_names(current),
    }
    return render(request, "suite_run.html", context)


def _case_names(current: SuiteRunView) -> dict[str, str]:
    return {str(c.case_id): c.case_name for c in current.statistics.cases}


async def run_suite(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, RUN)
    suite_id = path_id(request)
    started = await start_suite_run(
        request.app[POOL],
        request.app[SETTINGS],
        company_id=viewer.company_id,
        suite_id=suite_id,
        body=SuiteRunTrigger(),
        key=None,
    )
    return see_other(f"/ui/suites/{suite_id}/runs/{started.suite_run_id}")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/suites", suites_page)
    router.add_get("/ui/suites/{id}", suite_page)
    router.add_post("/ui/suites/{id}/run", run_suite)
    router.add_get("/ui/suites/{id}/runs/{suite_run_id}", suite_run_page)
