"""`/agents`: create, list, get, update (PATCH), delete (soft). An http agent's secrets are
sealed before they are stored and never shown again (`***`)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from schemas.agents import AgentCreate, AgentFields, AgentPatch, AgentType
from schemas.endpoints import AgentEndpoint
from schemas.pages import ListQuery, page_of
from service.core.errors import FieldError, NotConfigured, NotFound, SettingsError, ValidationFailed
from service.core.ids import new_id
from service.core.sealing import SecretBox
from service.core.settings import Settings
from service.db import agents
from service.db.postgres import transaction
from service.domain.agents import agent_field_errors, check_flow
from service.domain.endpoints import stored_secrets
from service.gateway.appkeys import POOL, SETTINGS
from service.gateway.handlers.parsing import parse_body, parse_query, path_id, revalidate
from service.gateway.handlers.responses import json_response, no_content, principal

FIELDS = set(AgentFields.model_fields)


class AgentListQuery(ListQuery):
    type: AgentType | None = None
    is_active: bool | None = None


def check_agent(agent: AgentFields, settings: Settings) -> None:
    """Everything beyond types: tools, models, rules, URLs (400), then the flow graph (FLOW_INVALID)."""
    errors = agent_field_errors(
        agent,
        providers=settings.provider_names(),
        allow_http=settings.webhook_allow_private,
        agent_networks=settings.agent_networks(),
    )
    if errors:
        raise ValidationFailed(fields=errors)
    check_flow(agent.flow_config)


def sealer(settings: Settings) -> Callable[[str], str]:
    """Seals a secret with AGENT_EVAL_WEBHOOK_SECRET_KEYS (503 NOT_CONFIGURED without them; only
    an agent with secrets needs them)."""

    def seal(secret: str) -> str:
        try:
            box = SecretBox(settings.require_webhook_keys())
        except SettingsError as exc:
            raise NotConfigured(f"Agent secrets cannot be stored: {exc}") from exc
        return box.seal(secret)

    return seal


def with_secrets(
    agent: AgentCreate, sent: AgentEndpoint | None, current: AgentEndpoint | None, settings: Settings
) -> AgentCreate:
    """The agent as it is stored: its endpoint's secrets sealed, or kept from `current` (see
    `service.domain.endpoints.stored_secrets`), in the form that keeps them when serialised."""
    if agent.endpoint is None:
        return agent
    secrets = stored_secrets(sent, current, sealer(settings), "body.endpoint")
    endpoint = agent.endpoint.model_copy(update={"secrets": secrets}).storable()
    return agent.model_copy(update={"endpoint": endpoint})


async def create_agent(request: web.Request) -> web.Response:
    body = await parse_body(request, AgentCreate)
    body = with_secrets(body, body.endpoint, None, request.app[SETTINGS])
    check_agent(body, request.app[SETTINGS])
    async with transaction(request.app[POOL]) as conn:
        agent = await agents.insert_agent(conn, new_id(), principal(request).company_id, body)
    return json_response(agent, status=201)


async def list_agents(request: web.Request) -> web.Response:
    query = parse_query(request, AgentListQuery)
    async with transaction(request.app[POOL]) as conn:
        items, total = await agents.list_agents(
            conn,
            principal(request).company_id,
            type_=query.type,
            is_active=query.is_active,
            limit=query.limit,
            offset=query.offset,
        )
    return json_response(page_of(items, total, query))


async def get_agent(request: web.Request) -> web.Response:
    agent_id = path_id(request)
    async with transaction(request.app[POOL]) as conn:
        agent = await agents.get_agent(conn, principal(request).company_id, agent_id)
    return json_response(agent)


async def update_agent(request: web.Request) -> web.Response:
    agent_id = path_id(request)
    patch = await parse_body(request, AgentPatch)
    company_id = principal(request).company_id
    async with transaction(request.app[POOL]) as conn:
        current = await agents.get_agent(conn, company_id, agent_id, for_update=True)
        if patch.type is not None and patch.type != current.type:
            raise ValidationFailed(fields=[FieldError("body.type", "an agent's type cannot change")])
        changes = {k: v for k, v in patch.changes().items() if k != "type"}
        merged = revalidate(AgentCreate, {**current.model_dump(mode="json", include=FIELDS), **changes})
        sent = patch.endpoint if "endpoint" in patch.model_fields_set else None
        merged = with_secrets(merged, sent, current.endpoint, request.app[SETTINGS])
        check_agent(merged, request.app[SETTINGS])
        agent = await agents.update_agent(conn, company_id, agent_id, merged)
    return json_response(agent)


async def delete_agent(request: web.Request) -> web.Response:
    agent_id = path_id(request)
    async with transaction(request.app[POOL]) as conn:
        if not await agents.delete_agent(conn, principal(request).company_id, agent_id):
            raise NotFound(f"Agent {agent_id} not found")
    return no_content()
