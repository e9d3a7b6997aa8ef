"""`/admin/*` (bearer AGENT_EVAL_ADMIN_TOKEN): companies, credits, API keys."""

from __future__ import annotations

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
from service.accounts import api_keys, credits, tenants
from service.db import companies
from service.db.postgres import transaction
from service.domain.ledger import adjustment_kind
from service.gateway.appkeys import KEY_CACHE, POOL
from service.gateway.handlers.parsing import fields_in, parse_body, path_id, revalidate
from service.gateway.handlers.responses import json_response


def company_view(company: companies.CompanyRow) -> Company:
    return Company.model_validate(company, from_attributes=True)


def key_view(key: companies.ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo.model_validate(key, from_attributes=True)


async def create_company(request: web.Request) -> web.Response:
    body = await parse_body(request, CompanyCreate)
    company = await tenants.create_company(
        request.app[POOL], body.name, credits_cents=body.credits_cents, billing_email=body.billing_email
    )
    return json_response(company_view(company), status=201)


async def get_company(request: web.Request) -> web.Response:
    company_id = path_id(request)
    async with transaction(request.app[POOL]) as conn:
        company = await companies.get_company(conn, company_id)
    return json_response(company_view(company))


async def update_company(request: web.Request) -> web.Response:
    company_id = path_id(request)
    patch = await parse_body(request, CompanyPatch)
    async with transaction(request.app[POOL]) as conn:
        current = company_view(await companies.get_company(conn, company_id))
        fields = current.model_dump(mode="json", include={"name", "is_suspended", "billing_email"})
        merged = revalidate(CompanyPatch, {**fields, **patch.changes()})
        company = await companies.update_company(
            conn,
            company_id,
            name=merged.name or current.name,
            is_suspended=bool(merged.is_suspended),
            billing_email=merged.billing_email,
        )
    return json_response(company_view(company))


async def adjust_credits(request: web.Request) -> web.Response:
    company_id = path_id(request)
    body = await parse_body(request, CreditAdjustment)
    with fields_in("body"):
        entry_id, balance = await credits.adjust_credits(
            request.app[POOL], company_id, body.amount_cents, body.reason
        )
    adjusted = CreditAdjusted(
        company_id=company_id,
        entry_id=entry_id,
        kind=adjustment_kind(body.amount_cents),
        amount_cents=body.amount_cents,
        balance_cents=balance,
    )
    return json_response(adjusted, status=201)


async def create_api_key(request: web.Request) -> web.Response:
    company_id = path_id(request)
    body = await parse_body(request, ApiKeyCreate)
    with fields_in("body"):
        issued = await api_keys.issue_api_key(
            request.app[POOL],
            company_id,
            name=body.name,
            scopes=list(body.scopes),
            rate_limit_per_minute=body.rate_limit_per_minute,
            expires_at=body.expires_at,
        )
    view = ApiKeyIssued.model_validate({**key_view(issued.api_key).model_dump(), "key": issued.key})
    return json_response(view, status=201)


async def list_api_keys(request: web.Request) -> web.Response:
    company_id = path_id(request)
    async with transaction(request.app[POOL]) as conn:
        await companies.get_company(conn, company_id)
        keys = await companies.list_api_keys(conn, company_id)
    return json_response(ApiKeyList(data=[key_view(k) for k in keys]))


async def revoke_api_key(request: web.Request) -> web.Response:
    """Revoked at once in the database; other gateway processes notice within the key cache's 5 s."""
    company_id, key_id = path_id(request), path_id(request, "key_id")
    async with transaction(request.app[POOL]) as conn:
        key = await companies.revoke_api_key(conn, company_id, key_id)
    request.app[KEY_CACHE].forget_all()
    return json_response(key_view(key))
