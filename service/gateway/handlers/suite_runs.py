"""Suite runs: start, re-run, list, read (aggregate, statistics, runs), cancel, compare."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from schemas.pages import page_of
from schemas.suite_runs import (
    CompareQuery,
    RerunRequest,
    SuiteRunListQuery,
    SuiteRunStarted,
    SuiteRunTrigger,
    SuiteRunView,
)
from service.db import suite_runs, suites
from service.db.postgres import connection
from service.gateway.appkeys import POOL, SETTINGS
from service.gateway.handlers.parsing import parse_body, parse_query, path_id
from service.gateway.handlers.responses import json_response, principal
from service.gateway.handlers.runs import idempotency_request
from service.runs.suite_completion import summary
from service.suites.cancels import cancel_suite_run
from service.suites.compare import compare_with_baseline
from service.suites.triggers import Started, rerun_suite_run, start_suite_run
from service.suites.views import view


def _started(started: Started) -> web.Response:
    return json_response(
        SuiteRunStarted(suite_run_id=started.suite_run_id, run_ids=started.run_ids), status=202
    )


async def run_suite(request: web.Request) -> web.Response:
    suite_id = path_id(request)
    body = await parse_body(request, SuiteRunTrigger)
    key = await idempotency_request(request)
    started = await start_suite_run(
        request.app[POOL],
        request.app[SETTINGS],
        company_id=principal(request).company_id,
        suite_id=suite_id,
        body=body,
        key=key,
    )
    return _started(started)


async def list_suite_runs(request: web.Request) -> web.Response:
    suite_id = path_id(request)
    query = parse_query(request, SuiteRunListQuery)
    company_id = principal(request).company_id
    async with connection(request.app[POOL]) as conn:
        await suites.get_suite(conn, company_id, suite_id)
        rows, total = await suite_runs.list_suite_runs(
            conn, company_id, suite_id, limit=query.limit, offset=query.offset
        )
        items = [summary(row, await suite_runs.list_members(conn, row.id)) for row in rows]
    return json_response(page_of(items, total, query))


async def get_suite_run(request: web.Request) -> web.Response:
    suite_id, suite_run_id = path_id(request), path_id(request, "suite_run_id")
    return json_response(await _view(request, suite_id, suite_run_id))


async def _view(request: web.Request, suite_id: UUID, suite_run_id: UUID) -> SuiteRunView:
    async with connection(request.app[POOL]) as conn:
        row = await suite_runs.get_suite_run(conn, principal(request).company_id, suite_id, suite_run_id)
        return view(row, await suite_runs.list_members(conn, suite_run_id))


async def cancel(request: web.Request) -> web.Response:
    suite_id, suite_run_id = path_id(request), path_id(request, "suite_run_id")
    await cancel_suite_run(
        request.app[POOL],
        request.app[SETTINGS],
        company_id=principal(request).company_id,
        suite_id=suite_id,
        suite_run_id=suite_run_id,
    )
    return json_response(await _view(request, suite_id, suite_run_id), status=202)


async def rerun(request: web.Request) -> web.Response:
    suite_id, suite_run_id = path_id(request), path_id(request, "suite_run_id")
    body = await parse_body(request, RerunRequest)
    started = await rerun_suite_run(
        request.app[POOL],
        request.app[SETTINGS],
        company_id=principal(request).company_id,
        suite_id=suite_id,
        suite_run_id=suite_run_id,
        only=body.only,
    )
    return _started(started)


async def compare_suite_runs(request: web.Request) -> web.Response:
    suite_id, suite_run_id = path_id(request), path_id(request, "suite_run_id")
    query = parse_query(request, CompareQuery)
    company_id = principal(request).company_id
    async with connection(request.app[POOL]) as conn:
        current = await suite_runs.get_suite_run(conn, company_id, suite_id, suite_run_id)
        members = await suite_runs.list_members(conn, current.id)
        comparison = await compare_with_baseline(
            conn, company_id, (current, members), query.baseline, query.alpha
        )
    return json_response(comparison)
