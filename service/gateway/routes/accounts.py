"""Billing reads (API keys) and the admin API (the admin token; absent when it is unset)."""

from __future__ import annotations

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
from schemas.billing import Billing, Consumption, ConsumptionQuery
from service.gateway.endpoints import Access, Endpoint
from service.gateway.handlers import admin, billing

ADMIN = Access.ADMIN
COMPANY = "/admin/companies/{id}"

ACCOUNT_ENDPOINTS: tuple[Endpoint, ...] = (
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
