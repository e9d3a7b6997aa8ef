"""The dashboard's Billing and Webhooks pages over HTTP: the balance and a bar per day of the
consumption the API reports (7, 30 or 90 days), the company's webhook endpoints without their
secrets, an endpoint's delivery log newest first, and "Resend" doing what the API's resend does,
behind CSRF, the `webhooks:manage` scope and the company's own ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from pydantic import SecretStr
from pytest_aiohttp.plugin import AiohttpClient

from service.core.settings import Settings
from service.db import ledger
from service.db.postgres import Pool, connection
from service.gateway.app import create_app
from service.gateway.ui.charts import BOTTOM, HEIGHT, TOP
from service.gateway.ui.views import money
from tests.support.api import ADMIN_HEADERS, Client, Json, Tenant, created, key_for
from tests.support.dashboard import UI_SECRET, csrf_of, post_form, sign_in
from tests.support.receiver import running_receiver
from tests.support.run_api import MUST_SAY_REFUND, running_pipeline, scripted_case, trigger
from tests.support.waiting import eventually

WEBHOOKS = "/webhooks"
NOWHERE = "http://127.0.0.1:9/hook"  # loopback is allowed here; nothing listens (nothing is sent)
BAR = re.compile(
    r'<rect class="day-bar" data-day="([0-9-]+)" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"'
    r' fill="#1f5fbf"><title>\1: (-?\$[\d,]+\.\d\d)</title></rect>'
)
FULL_BAR = HEIGHT - BOTTOM - TOP
ROW = re.compile(
    r'<tr data-day="([0-9-]+)"><th scope="row"><time datetime="\1">\1</time></th><td>([^<]+)</td>'
)


@pytest.fixture
def ui_settings(api_settings: Settings) -> Settings:
    """The dashboard on; webhook receivers on loopback allowed, as in local development."""
    return api_settings.model_copy(
        update={"ui_session_secret": SecretStr(UI_SECRET), "webhook_allow_private": True}
    )


@pytest.fixture
async def ui(aiohttp_client: AiohttpClient, ui_settings: Settings, pool: Pool) -> Client:
    return await aiohttp_client(create_app(ui_settings, pool=pool))


async def _page(ui: Client, path: str) -> tuple[int, str]:
    response = await ui.get(path, allow_redirects=False)
    return response.status, await response.text()


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

    status, html = await _page(ui, "/ui/billing")

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

    week, month, quarter = [_bars((await _page(ui, f"/ui/billing?days={n}"))[1]) for n in (7, 30, 90)]

    assert (len(week), len(month), len(quarter)) == (7, 30, 90)
    assert {figure for _, figure in week.values()} == {"$0.00"}
    assert (month[_day(10)][1], _day(40) in month) == ("$1.20", False)
    assert (quarter[_day(10)][1], quarter[_day(40)][1]) == ("$1.20", "$7.00")
    _, html = await _page(ui, "/ui/billing?days=90")
    assert "$8.20 over the last 90 days" in html
    assert '<a href="/ui/billing?days=90" aria-current="page">' in html
    assert len(_bars((await _page(ui, "/ui/billing?days="))[1])) == 30  # empty: the default


@pytest.mark.parametrize("days", ["8", "0", "-7", "30.0", "month", "1e2"])
async def test_a_days_value_outside_7_30_90_is_a_400_page(ui: Client, tenant: Tenant, days: str) -> None:
    await sign_in(ui, tenant.key)
    status, html = await _page(ui, f"/ui/billing?days={days}")
    assert status == 400
    assert "VALIDATION_ERROR" in html
    assert "<code>query.days</code>" in html


async def test_another_companys_consumption_never_shows(
    ui: Client, tenant: Tenant, stranger: Tenant, pool: Pool
) -> None:
    await _deduct(ui, tenant, 999, pool, days_ago=1)
    await sign_in(ui, stranger.key)
    _, html = await _page(ui, "/ui/billing")
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
    status, html = await _page(ui, path)
    assert status == 403
    assert "INSUFFICIENT_SCOPE" in html
    assert scope in html


# --- webhooks ------------------------------------------------------------------------------------


async def _endpoint(ui: Client, tenant: Tenant, **body: object) -> Json:
    return await created(ui, tenant, WEBHOOKS, {"url": NOWHERE, **body})


async def _ping(ui: Client, tenant: Tenant, endpoint_id: str) -> Json:
    response = await ui.post(f"{WEBHOOKS}/{endpoint_id}/test", headers=tenant.headers())
    delivery: Json = await response.json()
    assert response.status == 202, delivery
    return delivery


async def _delivery(ui: Client, tenant: Tenant, endpoint_id: str, delivery_id: str) -> Json:
    response = await ui.get(f"{WEBHOOKS}/{endpoint_id}/deliveries/{delivery_id}", headers=tenant.headers())
    delivery: Json = await response.json()
    assert response.status == 200, delivery
    return delivery


async def _failed_delivery(ui: Client, tenant: Tenant) -> tuple[Json, Json]:
    """An endpoint and a delivery of it that failed (the endpoint was disabled before any attempt)."""
    endpoint = await _endpoint(ui, tenant)
    delivery = await _ping(ui, tenant, endpoint["id"])
    response = await ui.post(f"{WEBHOOKS}/{endpoint['id']}/disable", headers=tenant.headers())
    assert response.status == 200
    assert (await _delivery(ui, tenant, endpoint["id"], delivery["id"]))["status"] == "failed"
    return endpoint, delivery


def _resend_path(endpoint_id: str, delivery_id: str) -> str:
    return f"/ui/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend"


def _listed(html: str, what: str) -> list[str]:
    return re.findall(rf'data-{what}-id="([0-9a-f-]+)"', html)


async def test_webhooks_lists_the_companys_endpoints_and_never_a_secret(
    ui: Client, tenant: Tenant, stranger: Tenant, pool: Pool
) -> None:
    first = await _endpoint(ui, tenant, description="Slack relay")
    second = await _endpoint(
        ui, tenant, url="http://127.0.0.1:9/off", event_types=["agent_eval.run.turn"], enabled=False
    )
    theirs = await _endpoint(ui, stranger)
    rotated = await ui.post(f"{WEBHOOKS}/{first['id']}/rotate-secret", headers=tenant.headers())
    secrets = [first["secret"], second["secret"], (await rotated.json())["secret"]]
    async with connection(pool) as conn:
        sealed = await conn.fetch("SELECT secret_sealed, previous_secret_sealed FROM webhook_endpoints")
    await sign_in(ui, tenant.key)

    status, listing = await _page(ui, "/ui/webhooks")
    _, detail = await _page(ui, f"/ui/webhooks/{first['id']}")

    assert status == 200
    assert _listed(listing, "endpoint") == [second["id"], first["id"]]  # newest first
    assert theirs["id"] not in listing
    row = listing[listing.index(f'data-endpoint-id="{second["id"]}"') :]
    assert "http://127.0.0.1:9/off" in row
    assert '<span class="label">agent_eval.run.turn</span>' in row
    assert (
        '<span class="badge disabled">disabled</span> <span class="muted">(disabled by the user)</span>'
        in row
    )
    assert "Slack relay" in listing
    assert '<span class="badge enabled">enabled</span>' in listing
    assert '<code id="endpoint-url">http://127.0.0.1:9/hook</code>' in detail
    for html in (listing, detail):
        assert "whsec_" not in html
        for secret in secrets:
            assert secret.removeprefix("whsec_") not in html
        for record in sealed:
            assert all(value is None or value not in html for value in record.values())


async def test_an_endpoints_page_lists_its_deliveries_newest_first(ui: Client, tenant: Tenant) -> None:
    endpoint = await _endpoint(ui, tenant)
    older, newer = [await _ping(ui, tenant, endpoint["id"]) for _ in range(2)]  # no notifier: pending
    await sign_in(ui, tenant.key)

    status, html = await _page(ui, f"/ui/webhooks/{endpoint['id']}")

    assert status == 200
    assert _listed(html, "delivery") == [newer["id"], older["id"]]
    row = html[html.index(f'data-delivery-id="{newer["id"]}"') :]
    assert "agent_eval.ping" in row
    assert '<span class="badge pending">pending</span>' in row
    assert '<td class="attempts">0</td>' in row
    assert "not tried yet" in row
    next_at = datetime.fromisoformat(newer["next_attempt_at"])
    assert f'<time datetime="{next_at.isoformat()}">' in row
    assert html.count(">Resend</button>") == 2


async def test_resend_sends_the_delivery_again_as_a_new_attempt(
    ui: Client, tenant: Tenant, ui_settings: Settings, pool: Pool
) -> None:
    async with running_receiver() as receiver:
        endpoint = await _endpoint(ui, tenant, url=receiver.url)
        await sign_in(ui, tenant.key)
        async with running_pipeline(ui_settings, pool):
            sent = await _ping(ui, tenant, endpoint["id"])
            await eventually(
                lambda: _delivery(ui, tenant, endpoint["id"], sent["id"]),
                until=lambda d: d["status"] == "succeeded",
                what="the first attempt",
            )
            page = f"/ui/webhooks/{endpoint['id']}"
            status, location = await post_form(ui, page, _resend_path(endpoint["id"], sent["id"]))
            first, again = await receiver.wait_for(2)
            delivery = await eventually(
                lambda: _delivery(ui, tenant, endpoint["id"], sent["id"]),
                until=lambda d: d["status"] == "succeeded" and d["attempts"] == 2,
                what="the second attempt",
            )
        _, html = await _page(ui, page)

    assert (status, location) == (303, page)
    assert first.webhook_id == again.webhook_id == sent["event_id"]
    assert first.body == again.body
    assert [(a["number"], a["status_code"]) for a in delivery["attempt_log"]] == [(1, 200), (2, 200)]
    row = html[html.index(f'data-delivery-id="{sent["id"]}"') :]
    assert '<span class="badge succeeded">succeeded</span>' in row
    assert '<td class="attempts">2</td>' in row
    assert '<td class="last-response"><code>200</code>' in row


async def test_resend_of_a_failed_delivery_queues_it_again(ui: Client, tenant: Tenant) -> None:
    endpoint, delivery = await _failed_delivery(ui, tenant)
    await sign_in(ui, tenant.key)

    page = f"/ui/webhooks/{endpoint['id']}"
    status, location = await post_form(ui, page, _resend_path(endpoint["id"], delivery["id"]))

    assert (status, location) == (303, page)
    again = await _delivery(ui, tenant, endpoint["id"], delivery["id"])
    assert (again["status"], again["attempts"], again["attempt_log"]) == ("pending", 0, [])
    assert again["next_attempt_at"] is not None


async def test_resend_without_the_forms_token_is_refused_with_403(ui: Client, tenant: Tenant) -> None:
    endpoint, delivery = await _failed_delivery(ui, tenant)
    await sign_in(ui, tenant.key)

    response = await ui.post(_resend_path(endpoint["id"], delivery["id"]), data={}, allow_redirects=False)

    assert response.status == 403
    assert "CSRF_REJECTED" in await response.text()
    assert (await _delivery(ui, tenant, endpoint["id"], delivery["id"]))["status"] == "failed"


async def test_a_read_only_key_sees_no_resend_button_and_cannot_resend(
    ui: Client, tenant: Tenant, pool: Pool
) -> None:
    endpoint, delivery = await _failed_delivery(ui, tenant)
    reader = await key_for(pool, tenant, ["webhooks:read"])
    await sign_in(ui, reader.key)
    page = f"/ui/webhooks/{endpoint['id']}"

    status, html = await _page(ui, page)
    token = csrf_of(html)  # the sign-out form's
    response = await ui.post(_resend_path(endpoint["id"], delivery["id"]), data={"csrf_token": token})

    assert status == 200
    assert _listed(html, "delivery") == [delivery["id"]]
    assert "Resend" not in html
    assert response.status == 403
    assert "webhooks:manage" in await response.text()
    assert (await _delivery(ui, tenant, endpoint["id"], delivery["id"]))["status"] == "failed"


async def test_another_companys_endpoint_and_delivery_answer_404(
    ui: Client, tenant: Tenant, stranger: Tenant
) -> None:
    endpoint, delivery = await _failed_delivery(ui, tenant)
    mine = await _endpoint(ui, stranger)
    await sign_in(ui, stranger.key)

    status, html = await _page(ui, f"/ui/webhooks/{endpoint['id']}")
    _, listing = await _page(ui, "/ui/webhooks")
    resent = await post_form(ui, "/ui/webhooks", _resend_path(endpoint["id"], delivery["id"]))
    crossed = await post_form(ui, "/ui/webhooks", _resend_path(mine["id"], delivery["id"]))

    assert (status, "NOT_FOUND" in html) == (404, True)
    assert _listed(listing, "endpoint") == [mine["id"]]
    assert (resent[0], crossed[0]) == (404, 404)
    assert (await _delivery(ui, tenant, endpoint["id"], delivery["id"]))["status"] == "failed"
    assert (await _page(ui, "/ui/webhooks/not-a-uuid"))[0] == 400
