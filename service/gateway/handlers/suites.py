"""`/agent-eval/suites`: create, list, get, update (PATCH), delete (soft)."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from schemas.pages import ListQuery, page_of
from schemas.suites import SuiteCreate, SuiteFields, SuitePatch
from service.core.errors import NotFound
from service.core.ids import new_id
from service.db import agents, suites
from service.db.postgres import Connection, transaction
from service.gateway.appkeys import POOL
from service.gateway.handlers.parsing import parse_body, parse_query, path_id, revalidate
from service.gateway.handlers.responses import json_response, no_content, principal

FIELDS = set(SuiteFields.model_fields)


async def check_references(conn: Connection, company_id: UUID, suite: SuiteFields) -> None:
    """A suite's default agent must be the company's and not deleted (404 otherwise)."""
    if suite.agent_id is not None:
        await agents.get_agent(conn, company_id, suite.agent_id)


async def create_suite(request: web.Request) -> web.Response:
    body = await parse_body(request, SuiteCreate)
    company_id = principal(request).company_id
    async with transaction(request.app[POOL]) as conn:
        await check_references(conn, company_id, body)
        suite = await suites.insert_suite(conn, new_id(), company_id, body)
    return json_response(suite, status=201)


async def list_suites(request: web.Request) -> web.Response:
    query = parse_query(request, ListQuery)
    async with transaction(request.app[POOL]) as conn:
        items, total = await suites.list_suites(
            conn, principal(request).company_id, limit=query.limit, offset=query.offset
        )
    return json_response(page_of(items, total, query))


async def get_suite(request: web.Request) -> web.Response:
    suite_id = path_id(request)
    async with transaction(request.app[POOL]) as conn:
        suite = await suites.get_suite(conn, principal(request).company_id, suite_id)
    return json_response(suite)


async def update_suite(request: web.Request) -> web.Response:
    suite_id = path_id(request)
    patch = await parse_body(request, SuitePatch)
    company_id = principal(request).company_id
    async with transaction(request.app[POOL]) as conn:
        current = await suites.get_suite(conn, company_id, suite_id, for_update=True)
        merged = revalidate(
            SuiteCreate, {**current.model_dump(mode="json", include=FIELDS), **patch.changes()}
        )
        if "agent_id" in patch.model_fields_set:
            await check_references(conn, company_id, merged)
        suite = await suites.update_suite(conn, company_id, suite_id, merged)
    return json_response(suite)


async def delete_suite(request: web.Request) -> web.Response:
    suite_id = path_id(request)
    async with transaction(request.app[POOL]) as conn:
        if not await suites.delete_suite(conn, principal(request).company_id, suite_id):
            raise NotFound(f"Suite {suite_id} not found")
    return no_content()
