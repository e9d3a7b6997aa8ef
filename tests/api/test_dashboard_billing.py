"""The dashboard's Billing page over HTTP: the balance and a bar per day of the consumption the
API reports (7, 30 or 90 days), another company's never shown; and the scope each accounts page
needs (billing and webhooks)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from service.core.settings import Settings
from service.db import ledger
from service.db.postgres import Pool, connection
from service.gateway.ui.charts import BOTTOM, HEIGHT, TOP
from service.gateway.ui.views import money
from tests.support.api import ADMIN_HEADERS, Client, Tenant, key_for
from tests.support.dashboard import get_page, sign_in
from tests.support.run_api import MUST_SAY_REFUND, running_pipeline, scripted_case, trigger

BAR = re.compile(
    r'<rect class="day-bar" data-day="([0-9-]+)" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"'
    r' fill="#1f5fbf"><title>\1: (-?\$[\d,]+\.\d\d)</title></rect>'
)
FULL_BAR = HEIGHT - BOTTOM - TOP
ROW = re.compile(
    r'<tr data-day="([0-9-]+)"><th scope="row"><time datetime="\1">\1</time></th><td>([^<]+)</td>'
)


def _bars(html: str) -> dict[str, tuple[float, str]]:
    """Each day's bar: its height and the figure in its title."""
    return {day: (float(height), figure) for day, height, figure in BAR.findall(html)}


def _day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).date().isoformat()


# --- billing -------------------------------------------------------------------------------------


async def _deduct(ui: Client, tenant: Tenant, cents: int, pool: Pool, *, days_ago: int) -> None:
    """An admin deduction (consumption: an adjustment) dated `days_ago` days back."""
    response = await ui.post(
        f"/admin/companies/{tenant.company_id}/credits",
        json={"amount_cents": -cents, "reason": "test"},
        headers=ADMIN_HEADERS,
    )
    assert response.status == 201, await response.text()
    async with connection(pool) as conn:
        await conn.execute(
            "UPDATE credit_ledger SET created_at = created_at - make_interval(days => $2) WHERE id = $1",
            UUID((await response.json())["entry_id"]),
            days_ago,
        )


async def _run_charge(pool: Pool, tenant: Tenant) -> int:
    async with connection(pool) as conn:
        entries = await ledger.list_ledger_entries(conn, UUID(tenant.company_id))
    return -sum(e.amount_cents for e in entries if e.kind == "eval_run_charge")


async def test_billing_shows_the_balance_and_a_bar_per_day_of_real_charges(
    ui: Client, tenant: Tenant, ui_settings: Settings, pool: Pool
) -> None:
    case = await scripted_case(ui, tenant, success_criteria=[MUST_SAY_REFUND])
    async with running_pipeline(ui_settings, pool):
        done = await trigger(ui, tenant, case["id"], prefer="wait=30")
    assert done.status == 200, done.body
    await _deduct(ui, tenant, 250, pool, days_ago=3)
    charged = await _run_charge(pool, tenant)
    balance = (await (await ui.get("/billing", headers=tenant.headers())).json())["balance_cents"]
    await sign_in(ui, tenant.key)

    status, html = await get_page(ui, "/ui/billing")

    assert status == 200
    assert charged > 0
    assert f'<span id="balance">{money(balance)}</span>' in html
    assert balance == 100_000 - charged - 250
    bars = _bars(html)
    assert list(bars) == [_day(n) for n in range(29, -1, -1)]  # 30 days, oldest first, today last
    assert bars[_day(0)][1] == money(charged)
    assert bars[_day(3)][1] == money(250)
    assert {figure for day, (_, figure) in bars.items() if day not in (_day(0), _day(3))} == {"$0.00"}
    assert all((height > 0) == (day in (_day(0), _day(3))) for day, (height, _) in bars.items())
    heights = {cents: bars[day][0] for cents, day in ((charged, _day(0)), (250, _day(3)))}
    assert heights[max(heights)] == FULL_BAR  # the larger day reaches the top
    assert heights[min(heights)] == pytest.approx(FULL_BAR * min(heights) / max(heights), abs=0.1)
    table = dict(ROW.findall(html))
    assert table == {day: figure for day, (_, figure) in bars.items()}
    assert f"{money(charged + 250)} over the last 30 days" in html
    assert " style=" not in html
    assert "<style" not in html
    assert "<script>" not in html


async def test_the_days_choice_sets_the_window(ui: Client, tenant: Tenant, pool: Pool) -> None:
    await _deduct(ui, tenant, 700, pool, days_ago=40)
    await _deduct(ui, tenant, 120, pool, days_ago=10)
    await sign_in(ui, tenant.key)

    week, month, quarter = [_bars((await get_page(ui, f"/ui/billing?days={n}"))[1]) for n in (7, 30, 90)]

    assert (len(week), len(month), len(quarter)) == (7, 30, 90)
    assert {figure for _, figure in week.values()} == {"$0.00"}
    assert (month[_day(10)][1], _day(40) in month) == ("$1.20", False)
    assert (quarter[_day(10)][1], quarter[_day(40)][1]) == ("$1.20", "$7.00")
    _, html = await get_page(ui, "/ui/billing?days=90")
    assert "$8.20 over the last 90 days" in html
    assert '<a href="/ui/billing?days=90" aria-current="page">' in html
    assert len(_bars((await get_page(ui, "/ui/billing?days="))[1])) == 30  # empty: the default


@pytest.mark.parametrize("days", ["8", "0", "-7", "30.0", "month", "1e2"])
async def test_a_days_value_outside_7_30_90_is_a_400_page(ui: Client, tenant: Tenant, days: str) -> None:
    await sign_in(ui, tenant.key)
    status, html = await get_page(ui, f"/ui/billing?days={days}")
    assert status == 400
    assert "VALIDATION_ERROR" in html
    assert "<code>query.days</code>" in html


async def test_another_companys_consumption_never_shows(
    ui: Client, tenant: Tenant, stranger: Tenant, pool: Pool
) -> None:
    await _deduct(ui, tenant, 999, pool, days_ago=1)
    await sign_in(ui, stranger.key)
    _, html = await get_page(ui, "/ui/billing")
    assert '<span id="balance">$1,000.00</span>' in html
    assert {figure for _, figure in _bars(html).values()} == {"$0.00"}


@pytest.mark.parametrize(
    ("path", "scope", "held"),
    [
        ("/ui/billing", "billing:read", ["agent_eval:read", "webhooks:read"]),
        ("/ui/webhooks", "webhooks:read", ["agent_eval:read", "billing:read", "webhooks:manage"]),
        (f"/ui/webhooks/{UUID(int=1)}", "webhooks:read", ["billing:read"]),
    ],
)
async def test_a_key_without_the_pages_scope_gets_a_403_page(
    ui: Client, tenant: Tenant, pool: Pool, path: str, scope: str, held: list[str]
) -> None:
    narrow = await key_for(pool, tenant, held)
    await sign_in(ui, narrow.key)
    status, html = await get_page(ui, path)
    assert status == 403
    assert "INSUFFICIENT_SCOPE" in html
    assert scope in html
