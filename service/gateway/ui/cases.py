"""Dashboard pages of cases: the list with each case's recent pass/fail strip, and one case with
its assertions, its recent runs and a "Run now" button."""

from __future__ import annotations

from aiohttp import web

from schemas.runs import RunTrigger
from service.db import cases, run_lists
from service.db.cases import CaseFilters
from service.db.postgres import connection
from service.gateway.appkeys import POOL, SETTINGS
from service.gateway.handlers.parsing import path_id
from service.gateway.ui.access import signed_in
from service.gateway.ui.rendering import render, see_other
from service.gateway.ui.runs import READ, RUN
from service.gateway.ui.views import describe
from service.runs.triggers import trigger_case_run

CASES_SHOWN = 100
STRIP = 20  # runs in a case's pass/fail strip


async def cases_page(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, READ)
    async with connection(request.app[POOL]) as conn:
        shown, total = await cases.list_cases(
            conn, viewer.company_id, CaseFilters(), limit=CASES_SHOWN, offset=0
        )
        strips = await run_lists.list_recent_outcomes(conn, viewer.company_id, [c.id for c in shown], STRIP)
    context = {"cases": shown, "total": total, "strips": strips, "shown_max": CASES_SHOWN}
    return render(request, "cases.html", context)


async def case_page(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, READ)
    case_id = path_id(request)
    async with connection(request.app[POOL]) as conn:
        case = await cases.get_case(conn, viewer.company_id, case_id)
        strip = (await run_lists.list_recent_outcomes(conn, viewer.company_id, [case_id], STRIP))[case_id]
    context = {
        "case": case,
        "strip": strip,
        "assertions": [(describe(a), a.weight) for a in case.success_criteria],
        "may_run": viewer.may(RUN),
    }
    return render(request, "case.html", context)


async def run_now(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, RUN)
    case_id = path_id(request)
    triggered = await trigger_case_run(
        request.app[POOL],
        request.app[SETTINGS],
        company_id=viewer.company_id,
        case_id=case_id,
        body=RunTrigger(),
        key=None,
    )
    return see_other(f"/ui/runs/{triggered.run_id}")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/cases", cases_page)
    router.add_get("/ui/cases/{id}", case_page)
    router.add_post("/ui/cases/{id}/run", run_now)
