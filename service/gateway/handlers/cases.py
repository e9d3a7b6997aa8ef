"""`/agent-eval/cases`: create, list, get, update (PATCH), delete (soft); agent and persona embedded."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from schemas.cases import CaseCreate, CaseFields, CasePatch
from schemas.pages import ListQuery, page_of
from service.core.errors import FieldError, NotFound, ValidationFailed
from service.core.ids import new_id
from service.core.settings import Settings
from service.db import agents, cases, personas, suites
from service.db.postgres import Connection, transaction
from service.domain.cases import case_field_errors
from service.gateway.appkeys import POOL, SETTINGS
from service.gateway.handlers.parsing import parse_body, parse_query, path_id, revalidate
from service.gateway.handlers.responses import json_response, no_content, principal

FIELDS = set(CaseFields.model_fields)


class CaseListQuery(ListQuery):
    agent_id: UUID | None = None
    persona_id: UUID | None = None
    suite_id: UUID | None = None


def check_case(case: CaseFields, settings: Settings) -> None:
    errors = case_field_errors(
        case.success_criteria,
        case.agent_overrides,
        providers=settings.provider_names(),
        allow_http=settings.webhook_allow_private,
        agent_networks=settings.agent_networks(),
    )
    if errors:
        raise ValidationFailed(fields=errors)


async def resolve_agent(conn: Connection, company_id: UUID, body: CaseCreate) -> UUID:
    """The case's agent: its own, else its suite's default; it must be live and the company's."""
    agent_id = body.agent_id
    if body.suite_id is not None:
        suite = await suites.get_suite(conn, company_id, body.suite_id)
        agent_id = agent_id or suite.agent_id
    if agent_id is None:
        raise ValidationFailed(
            fields=[FieldError("body.agent_id", "required unless the suite has an agent_id")]
        )
    await agents.get_agent(conn, company_id, agent_id)
    return agent_id


async def create_case(request: web.Request) -> web.Response:
    body = await parse_body(request, CaseCreate)
    check_case(body, request.app[SETTINGS])
    company_id = principal(request).company_id
    async with transaction(request.app[POOL]) as conn:
        agent_id = await resolve_agent(conn, company_id, body)
        await personas.get_persona(conn, company_id, body.persona_id)
        case = await cases.insert_case(
            conn, new_id(), company_id, agent_id=agent_id, persona_id=body.persona_id, fields=body
        )
    return json_response(case, status=201)


async def list_cases(request: web.Request) -> web.Response:
    query = parse_query(request, CaseListQuery)
    filters = cases.CaseFilters(query.agent_id, query.persona_id, query.suite_id)
    async with transaction(request.app[POOL]) as conn:
        items, total = await cases.list_cases(
            conn, principal(request).company_id, filters, limit=query.limit, offset=query.offset
        )
    return json_response(page_of(items, total, query))


async def get_case(request: web.Request) -> web.Response:
    case_id = path_id(request)
    async with transaction(request.app[POOL]) as conn:
        case = await cases.get_case(conn, principal(request).company_id, case_id)
    return json_response(case)


async def update_case(request: web.Request) -> web.Response:
    """The agent cannot change; the persona and suite can, and must be live when the case is saved."""
    case_id = path_id(request)
    patch = await parse_body(request, CasePatch)
    company_id = principal(request).company_id
    async with transaction(request.app[POOL]) as conn:
        await cases.lock_case(conn, company_id, case_id)
        current = await cases.get_case(conn, company_id, case_id)
        if patch.agent_id is not None and patch.agent_id != current.agent_id:
            raise ValidationFailed(fields=[FieldError("body.agent_id", "a case's agent cannot change")])
        changes = {k: v for k, v in patch.changes().items() if k not in ("agent_id", "persona_id")}
        merged = revalidate(CaseFields, {**current.model_dump(mode="json", include=FIELDS), **changes})
        check_case(merged, request.app[SETTINGS])
        persona_id = patch.persona_id or current.persona_id
        await personas.get_persona(conn, company_id, persona_id)
        if merged.suite_id is not None and "suite_id" in patch.model_fields_set:
            await suites.get_suite(conn, company_id, merged.suite_id)
        case = await cases.update_case(
            conn, company_id, case_id, agent_id=current.agent_id, persona_id=persona_id, fields=merged
        )
    return json_response(case)


async def delete_case(request: web.Request) -> web.Response:
    case_id = path_id(request)
    async with transaction(request.app[POOL]) as conn:
        if not await cases.delete_case(conn, principal(request).company_id, case_id):
            raise NotFound(f"Case {case_id} not found")
    return no_content()
