"""Dashboard page of billing: the company's balance, and its consumption per day over the last 7,
30 or 90 days (UTC days, today included) as a bar chart drawn on the server, with the same
figures in a table. The figures are the API's (`GET /billing`, `GET /billing/consumption` by
day, top-ups left out: consumption is positive, a refund takes it back)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal, get_args

from aiohttp import web
from pydantic import BaseModel, BeforeValidator

from schemas.billing import ConsumptionQuery
from service.db import billing, companies
from service.db.postgres import transaction
from service.gateway.appkeys import CLOCK, POOL
from service.gateway.handlers.billing import products_for
from service.gateway.handlers.parsing import parse_query
from service.gateway.ui.access import signed_in
from service.gateway.ui.charts import bar_chart, daily_series
from service.gateway.ui.rendering import render

READ = "billing:read"
Days = Literal[7, 30, 90]
DAY_CHOICES: tuple[Days, ...] = get_args(Days)
DEFAULT_DAYS: Days = 30


def _days(value: object) -> object:
    """A query string's digits as a number (empty: the default), for the choice to check."""
    if value == "":
        return DEFAULT_DAYS
    return int(value) if isinstance(value, str) and value.isdecimal() else value


class BillingQuery(BaseModel):
    """`?days=7|30|90` (empty or absent: 30)."""

    days: Annotated[Days, BeforeValidator(_days)] = DEFAULT_DAYS


def per_day(buckets: Iterable[billing.ConsumptionBucket]) -> dict[date, int]:
    """The day's consumption in cents over every product of the day's buckets."""
    totals: dict[date, int] = defaultdict(int)
    for bucket in buckets:
        totals[date.fromisoformat(bucket.period)] += bucket.total_amount_cents
    return dict(totals)


async def billing_page(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, READ)
    query = parse_query(request, BillingQuery)
    today = request.app[CLOCK].now().astimezone(UTC).date()
    start = datetime.combine(today - timedelta(days=query.days - 1), time.min, UTC)
    async with transaction(request.app[POOL], snapshot=True) as conn:  # the balance and the ledger agree
        company = await companies.get_company(conn, viewer.company_id)
        buckets = await billing.consumption(
            conn,
            viewer.company_id,
            start=start,
            end=datetime.combine(today + timedelta(days=1), time.min, UTC),
            group_by="day",
            products=products_for(ConsumptionQuery()),
        )
    series = daily_series(per_day(buckets), today, query.days)
    context = {
        "company": company,
        "days": query.days,
        "choices": DAY_CHOICES,
        "series": series,
        "chart": bar_chart(series),
        "total_cents": sum(cents for _, cents in series),
        "low": company.low_balance_threshold_cents is not None
        and company.balance_cents < company.low_balance_threshold_cents,
    }
    return render(request, "billing.html", context)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/billing", billing_page)
