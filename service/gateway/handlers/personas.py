"""`/agent-eval/personas`: create, list (by name), get, update (PATCH), delete (soft)."""

from __future__ import annotations

from aiohttp import web

from schemas.fields import Language
from schemas.pages import ListQuery, page_of
from schemas.personas import PersonaCreate, PersonaFields, PersonaPatch
from service.core.errors import FieldError, NotFound, ValidationFailed
from service.core.ids import new_id
from service.core.settings import Settings
from service.db import personas
from service.db.postgres import transaction
from service.domain.agents import model_problem
from service.gateway.appkeys import POOL, SETTINGS
from service.gateway.handlers.parsing import parse_body, parse_query, path_id, revalidate
from service.gateway.handlers.responses import json_response, no_content, principal

FIELDS = set(PersonaFields.model_fields)


class PersonaListQuery(ListQuery):
    language: Language | None = None


def check_persona(persona: PersonaFields, settings: Settings) -> None:
    problem = model_problem(persona.model, settings.provider_names())
    if problem:
        raise ValidationFailed(fields=[FieldError("body.model", problem)])


async def create_persona(request: web.Request) -> web.Response:
    body = await parse_body(request, PersonaCreate)
    check_persona(body, request.app[SETTINGS])
    async with transaction(request.app[POOL]) as conn:
        persona = await personas.insert_persona(conn, new_id(), principal(request).company_id, body)
    return json_response(persona, status=201)


async def list_personas(request: web.Request) -> web.Response:
    query = parse_query(request, PersonaListQuery)
    async with transaction(request.app[POOL]) as conn:
        items, total = await personas.list_personas(
            conn,
            principal(request).company_id,
            language=query.language,
            limit=query.limit,
            offset=query.offset,
        )
    return json_response(page_of(items, total, query))


async def get_persona(request: web.Request) -> web.Response:
    persona_id = path_id(request)
    async with transaction(request.app[POOL]) as conn:
        persona = await personas.get_persona(conn, principal(request).company_id, persona_id)
    return json_response(persona)


async def update_persona(request: web.Request) -> web.Response:
    persona_id = path_id(request)
    patch = await parse_body(request, PersonaPatch)
    company_id = principal(request).company_id
    async with transaction(request.app[POOL]) as conn:
        current = await personas.get_persona(conn, company_id, persona_id, for_update=True)
        merged = revalidate(
            PersonaCreate, {**current.model_dump(mode="json", include=FIELDS), **patch.changes()}
        )
        check_persona(merged, request.app[SETTINGS])
        persona = await personas.update_persona(conn, company_id, persona_id, merged)
    return json_response(persona)


async def delete_persona(request: web.Request) -> web.Response:
    persona_id = path_id(request)
    async with transaction(request.app[POOL]) as conn:
        if not await personas.delete_persona(conn, principal(request).company_id, persona_id):
            raise NotFound(f"Persona {persona_id} not found")
    return no_content()
