"""Every route of the gateway, in one table: access rule, scope, and schemas per endpoint.

The same table registers the aiohttp routes, drives the access middleware (key, scope, rate
limit, admin token) and generates `/openapi.json`, so none of them can drift from the others.
"""

from __future__ import annotations

from importlib.metadata import version

from aiohttp import web

from schemas.admin import (
    ApiKeyCreate,
    ApiKeyInfo,
    ApiKeyIssued,
    ApiKeyList,
    Company,
    CompanyCreate,
    CompanyPatch,
    CreditAdjusted,
    CreditAdjustment,
)
from schemas.agents import Agent, AgentCreate, AgentPatch
from schemas.api import HealthBody
from schemas.billing import Billing, Consumption, ConsumptionQuery
from schemas.cases import Case, CaseCreate, CasePatch
from schemas.common import ListQuery, Page
from schemas.personas import Persona, PersonaCreate, PersonaPatch
from schemas.suites import Suite, SuiteCreate, SuitePatch
from service.endpoints import Access, Endpoint
from service.handlers import admin, agents, billing, cases, docs, health, personas, suites
from service.keys import ENDPOINTS, OPENAPI
from service.openapi import openapi_json

PUBLIC, ADMIN = Access.PUBLIC, Access.ADMIN
AGENTS, PERSONAS, CASES, SUITES = "Agents", "Personas", "Cases", "Suites"
AGENT, PERSONA, CASE, SUITE = (
    "/agents/{id}",
    "/agent-eval/personas/{id}",
    "/agent-eval/cases/{id}",
    "/agent-eval/suites/{id}",
)
COMPANY = "/admin/companies/{id}"

ENDPOINT_TABLE: tuple[Endpoint, ...] = (
    # Health, metrics, docs: no key, never rate limited.
    Endpoint(
        "GET", "/healthz", health.healthz, "healthz", "Liveness", "Ops", PUBLIC, responses={200: HealthBody}
    ),
    Endpoint(
        "GET", "/readyz", health.readyz, "readyz", "Readiness", "Ops", PUBLIC, responses={200: HealthBody}
    ),
    Endpoint(
        "GET",
        "/metrics",
        health.metrics,
        "metrics",
        "Prometheus metrics",
        "Ops",
        PUBLIC,
        responses={200: None},
        content_type="text/plain",
    ),
    Endpoint(
        "GET", "/openapi.json", docs.openapi, "openapi", "This document", "Ops", PUBLIC, responses={200: None}
    ),
    Endpoint(
        "GET",
        "/docs",
        docs.page,
        "docs",
        "Human-readable API docs",
        "Ops",
        PUBLIC,
        responses={200: None},
        content_type="text/html",
    ),
    # Agents.
    Endpoint(
        "POST",
        "/agents",
        agents.create_agent,
        "create_agent",
        "Create an agent",
        AGENTS,
        scope="agents:create",
        body=AgentCreate,
        responses={201: Agent},
    ),
    Endpoint(
        "GET",
        "/agents",
        agents.list_agents,
        "list_agents",
        "List agents, newest first",
        AGENTS,
        scope="agents:read",
        query=agents.AgentListQuery,
        responses={200: Page[Agent]},
    ),
    Endpoint(
        "GET",
        AGENT,
        agents.get_agent,
        "get_agent",
        "Get an agent",
        AGENTS,
        scope="agents:read",
        responses={200: Agent},
    ),
    Endpoint(
        "PATCH",
        AGENT,
        agents.update_agent,
        "update_agent",
        "Update an agent",
        AGENTS,
        scope="agents:update",
        body=AgentPatch,
        responses={200: Agent},
    ),
    Endpoint(
        "DELETE",
        AGENT,
        agents.delete_agent,
        "delete_agent",
        "Delete an agent (soft; is_active=false)",
        AGENTS,
        scope="agents:delete",
        responses={204: None},
    ),
    # Personas.
    Endpoint(
        "POST",
        "/agent-eval/personas",
        personas.create_persona,
        "create_persona",
        "Create a persona",
        PERSONAS,
        scope="agent_eval:create",
        body=PersonaCreate,
        responses={201: Persona},
    ),
    Endpoint(
        "GET",
        "/agent-eval/personas",
        personas.list_personas,
        "list_personas",
        "List personas by name",
        PERSONAS,
        scope="agent_eval:read",
        query=personas.PersonaListQuery,
        responses={200: Page[Persona]},
    ),
    Endpoint(
        "GET",
        PERSONA,
        personas.get_persona,
        "get_persona",
        "Get a persona",
        PERSONAS,
        scope="agent_eval:read",
        responses={200: Persona},
    ),
    Endpoint(
        "PATCH",
        PERSONA,
        personas.update_persona,
        "update_persona",
        "Update a persona",
        PERSONAS,
        scope="agent_eval:update",
        body=PersonaPatch,
        responses={200: Persona},
    ),
    Endpoint(
        "DELETE",
        PERSONA,
        personas.delete_persona,
        "delete_persona",
        "Delete a persona (soft)",
        PERSONAS,
        scope="agent_eval:delete",
        responses={204: None},
    ),
    # Cases.
    Endpoint(
        "POST",
        "/agent-eval/cases",
        cases.create_case,
        "create_case",
        "Create a case",
        CASES,
        scope="agent_eval:create",
        body=CaseCreate,
        responses={201: Case},
    ),
    Endpoint(
        "GET",
        "/agent-eval/cases",
        cases.list_cases,
        "list_cases",
        "List cases, newest first",
        CASES,
        scope="agent_eval:read",
        query=cases.CaseListQuery,
        responses={200: Page[Case]},
    ),
    Endpoint(
        "GET",
        CASE,
        cases.get_case,
        "get_case",
        "Get a case with its agent and persona",
        CASES,
        scope="agent_eval:read",
        responses={200: Case},
    ),
    Endpoint(
        "PATCH",
        CASE,
        cases.update_case,
        "update_case",
        "Update a case (its agent cannot change)",
        CASES,
        scope="agent_eval:update",
        body=CasePatch,
        responses={200: Case},
    ),
    Endpoint(
        "DELETE",
        CASE,
        cases.delete_case,
        "delete_case",
        "Delete a case (soft; runs stay)",
        CASES,
        scope="agent_eval:delete",
        responses={204: None},
    ),
    # Suites.
    Endpoint(
        "POST",
        "/agent-eval/suites",
        suites.create_suite,
        "create_suite",
        "Create a suite",
        SUITES,
        scope="agent_eval:create",
        body=SuiteCreate,
        responses={201: Suite},
    ),
    Endpoint(
        "GET",
        "/agent-eval/suites",
        suites.list_suites,
        "list_suites",
        "List suites, newest first",
        SUITES,
        scope="agent_eval:read",
        query=ListQuery,
        responses={200: Page[Suite]},
    ),
    Endpoint(
        "GET",
        SUITE,
        suites.get_suite,
        "get_suite",
        "Get a suite",
        SUITES,
        scope="agent_eval:read",
        responses={200: Suite},
    ),
    Endpoint(
        "PATCH",
        SUITE,
        suites.update_suite,
        "update_suite",
        "Update a suite",
        SUITES,
        scope="agent_eval:update",
        body=SuitePatch,
        responses={200: Suite},
    ),
    Endpoint(
        "DELETE",
        SUITE,
        suites.delete_suite,
        "delete_suite",
        "Delete a suite (soft; cases keep it)",
        SUITES,
        scope="agent_eval:delete",
        responses={204: None},
    ),
    # Billing.
    Endpoint(
        "GET",
        "/billing",
        billing.get_billing,
        "get_billing",
        "Balance and billing status",
        "Billing",
        scope="billing:read",
        responses={200: Billing},
    ),
    Endpoint(
        "GET",
        "/billing/consumption",
        billing.get_consumption,
        "get_consumption",
        "Ledger movements grouped by period and product",
        "Billing",
        scope="billing:read",
        query=ConsumptionQuery,
        responses={200: Consumption},
    ),
    # Admin (bearer AGENT_EVAL_ADMIN_TOKEN; absent when the token is unset).
    Endpoint(
        "POST",
        "/admin/companies",
        admin.create_company,
        "admin_create_company",
        "Create a company",
        "Admin",
        ADMIN,
        body=CompanyCreate,
        responses={201: Company},
    ),
    Endpoint(
        "GET",
        COMPANY,
        admin.get_company,
        "admin_get_company",
        "Get a company",
        "Admin",
        ADMIN,
        responses={200: Company},
    ),
    Endpoint(
        "PATCH",
        COMPANY,
        admin.update_company,
        "admin_update_company",
        "Rename or (un)suspend a company",
        "Admin",
        ADMIN,
        body=CompanyPatch,
        responses={200: Company},
    ),
    Endpoint(
        "POST",
        f"{COMPANY}/credits",
        admin.adjust_credits,
        "admin_adjust_credits",
        "Grant (positive) or deduct (negative) credits",
        "Admin",
        ADMIN,
        body=CreditAdjustment,
        responses={201: CreditAdjusted},
    ),
    Endpoint(
        "POST",
        f"{COMPANY}/api-keys",
        admin.create_api_key,
        "admin_create_api_key",
        "Create an API key (the key is shown only in this response)",
        "Admin",
        ADMIN,
        body=ApiKeyCreate,
        responses={201: ApiKeyIssued},
    ),
    Endpoint(
        "GET",
        f"{COMPANY}/api-keys",
        admin.list_api_keys,
        "admin_list_api_keys",
        "List a company's keys",
        "Admin",
        ADMIN,
        responses={200: ApiKeyList},
    ),
    Endpoint(
        "DELETE",
        f"{COMPANY}/api-keys/{{key_id}}",
        admin.revoke_api_key,
        "admin_revoke_api_key",
        "Revoke an API key",
        "Admin",
        ADMIN,
        responses={200: ApiKeyInfo},
    ),
)


def setup_routes(app: web.Application) -> None:
    for endpoint in ENDPOINT_TABLE:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler, name=endpoint.operation_id)
    app[ENDPOINTS] = {endpoint.operation_id: endpoint for endpoint in ENDPOINT_TABLE}
    app[OPENAPI] = openapi_json(ENDPOINT_TABLE, version=version("agent-eval"))
