"""Runs: trigger a case run (blocking up to 60 s), read, list, turns, evaluation, cancel."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from schemas.pages import page_of
from schemas.runs import CancelRequest, RunListQuery, RunTrigger, TurnList
from service.core.errors import FieldError, ValidationFailed
from service.db import run_lists, runs, turns
from service.db.postgres import connection
from service.domain.idempotency import fingerprint, key_problem
from service.domain.preferences import Wait, requested_wait
from service.gateway.appkeys import POOL, SETTINGS
from service.gateway.handlers.parsing import parse_body, parse_query, path_id, read_json
from service.gateway.handlers.responses import json_response, principal
from service.gateway.handlers.waiting import answer_when_done
from service.runs.cancels import cancel_run as cancel
from service.runs.triggers import IdempotencyRequest, trigger_case_run
from service.runs.views import evaluation_view, run_view

IDEMPOTENCY_KEY = "Idempotency-Key"


async def idempotency_request(request: web.Request) -> IdempotencyRequest | None:
    """The request's `Idempotency-Key` with its fingerprint, or None; a bad key is a 400."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        return None
    problem = key_problem(key)
    if problem:
        raise ValidationFailed(fields=[FieldError(f"header.{IDEMPOTENCY_KEY}", problem)])
    body = await read_json(request)
    return IdempotencyRequest(key, fingerprint(request.method, request.path, body))


def wait_of(request: web.Request, *, default_s: float) -> Wait:
    return requested_wait(request.headers.get("Prefer"), default_s)


async def trigger_run(request: web.Request) -> web.StreamResponse:
    case_id = path_id(request, "case_id")
    body = await parse_body(request, RunTrigger)
    key = await idempotency_request(request)
    settings = request.app[SETTINGS]
    company_id = principal(request).company_id
    triggered = await trigger_case_run(
        request.app[POOL], settings, company_id=company_id, case_id=case_id, body=body, key=key
    )
    wait = wait_of(request, default_s=settings.default_wait_s)
    return await answer_when_done(request, triggered.run_id, company_id, wait, fresh=triggered.created)


async def get_run(request: web.Request) -> web.StreamResponse:
    """The run; with `Prefer: wait=N`, held until it is done (200) or N seconds passed (202)."""
    run_id = path_id(request)
    company_id = principal(request).company_id
    wait = wait_of(request, default_s=0)
    if wait.asked:
        return await answer_when_done(request, run_id, company_id, wait)
    return json_response(run_view(await _run(request, run_id)))


async def list_runs(request: web.Request) -> web.Response:
    query = parse_query(request, RunListQuery)
    filters = run_lists.RunFilters(
        case_id=query.case_id,
        suite_id=query.suite_id,
        suite_run_id=query.suite_run_id,
        status=query.status,
        labels=dict(label.split("=", 1) for label in query.label),
        created_after=query.created_after,
        created_before=query.created_before,
    )
    async with connection(request.app[POOL]) as conn:
        items, total = await run_lists.list_runs(
            conn, principal(request).company_id, filters, limit=query.limit, offset=query.offset
        )
    return json_response(page_of([run_view(run) for run in items], total, query))


async def list_turns(request: web.Request) -> web.Response:
    run_id = path_id(request)
    async with connection(request.app[POOL]) as conn:
        await runs.get_run(conn, run_id, principal(request).company_id)
        rows = await turns.list_turns(conn, run_id)
    return json_response(TurnList(data=[row.to_api() for row in rows]))


async def get_evaluation(request: web.Request) -> web.Response:
    return json_response(evaluation_view(await _run(request, path_id(request))))


async def cancel_run(request: web.Request) -> web.StreamResponse:
    """Pending: cancelled and done at once (200). Running: flagged, ends at its next turn
    boundary (202, or 200 if `Prefer: wait` saw it done). Already over: 200, unchanged."""
    run_id = path_id(request)
    await parse_body(request, CancelRequest)
    key = await idempotency_request(request)
    settings = request.app[SETTINGS]
    company_id = principal(request).company_id
    flagged = await cancel(request.app[POOL], settings, company_id=company_id, run_id=run_id, key=key)
    wait = wait_of(request, default_s=0)
    if flagged:
        return await answer_when_done(request, run_id, company_id, wait)
    return json_response(run_view(await _run(request, run_id)))


async def _run(request: web.Request, run_id: UUID) -> runs.RunRow:
    async with connection(request.app[POOL]) as conn:
        return await runs.get_run(conn, run_id, principal(request).company_id)
