"""`/billing` and `/billing/consumption`: read from the company row and the credit ledger."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web

from schemas.billing import Billing, Consumption, ConsumptionQuery, ConsumptionRow, Product
from service.core.errors import FieldError, ValidationFailed
from service.db import billing, companies
from service.db.postgres import transaction
from service.gateway.appkeys import CLOCK, POOL
from service.gateway.handlers.parsing import parse_query
from service.gateway.handlers.responses import json_response, principal

DEFAULT_SPAN = timedelta(days=30)
MAX_SPAN = timedelta(days=3660)
PRODUCTS: tuple[Product, ...] = ("voice_call", "eval_run", "phone_number", "topup", "refund", "adjustment")


def products_for(query: ConsumptionQuery) -> list[str]:
    """One product when asked for; otherwise all, top-ups only with `include_topups`."""
    if query.product is not None:
        return [query.product]
    return [p for p in PRODUCTS if p != "topup" or query.include_topups]


def span_of(query: ConsumptionQuery, now: datetime) -> tuple[datetime, datetime]:
    end = query.to or now
    start = query.from_ or end - DEFAULT_SPAN
    if start >= end:
        raise ValidationFailed(fields=[FieldError("query.from", "must be before `to`")])
    if end - start > MAX_SPAN:
        raise ValidationFailed(fields=[FieldError("query.from", "the range may span at most 10 years")])
    return start, end


async def get_billing(request: web.Request) -> web.Response:
    async with transaction(request.app[POOL]) as conn:
        company = await companies.get_company(conn, principal(request).company_id)
    return json_response(
        Billing(
            has_payment_method=company.has_payment_method,
            billing_email=company.billing_email,
            balance_cents=company.balance_cents,
            balance=company.balance_cents / 100,
            currency=company.currency,
            is_suspended=company.is_suspended,
            auto_topup_enabled=company.auto_topup_enabled,
            auto_topup_amount_cents=company.auto_topup_amount_cents,
            low_balance_threshold_cents=company.low_balance_threshold_cents,
        )
    )


async def get_consumption(request: web.Request) -> web.Response:
    query = parse_query(request, ConsumptionQuery)
    start, end = span_of(query, request.app[CLOCK].now())
    async with transaction(request.app[POOL]) as conn:
        rows = await billing.consumption(
            conn,
            principal(request).company_id,
            start=start,
            end=end,
            group_by=query.group_by,
            products=products_for(query),
        )
    data = [ConsumptionRow.model_validate(row, from_attributes=True) for row in rows]
    return json_response(Consumption(from_=start, to=end, group_by=query.group_by, data=data))
