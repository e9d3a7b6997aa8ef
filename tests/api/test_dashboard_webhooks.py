"""The dashboard's Webhooks pages over HTTP: the company's endpoints without their secrets, an
endpoint's delivery log newest first, and "Resend" doing what the API's resend does, behind CSRF,
the `webhooks:manage` scope and the company's own ids."""

from __future__ import annotations

import re
from datetime import datetime

from service.core.settings import Settings
from service.db.postgres import Pool, connection
from tests.support.api import Client, Json, Tenant, created, key_for
from tests.support.dashboard import csrf_of, get_page, post_form, sign_in
from tests.support.receiver import running_receiver
from tests.support.run_api import running_pipeline
from tests.support.waiting import eventually

WEBHOOKS = "/webhooks"
NOWHERE = "http://127.0.0.1:9/hook"  # loopback is allowed here; nothing listens (nothing is sent)


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

    status, listing = await get_page(ui, "/ui/webhooks")
    _, detail = await get_page(ui, f"/ui/webhooks/{first['id']}")

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

    status, html = await get_page(ui, f"/ui/webhooks/{endpoint['id']}")

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
        _, html = await get_page(ui, page)

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

    status, html = await get_page(ui, page)
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

    status, html = await get_page(ui, f"/ui/webhooks/{endpoint['id']}")
    _, listing = await get_page(ui, "/ui/webhooks")
    resent = await post_form(ui, "/ui/webhooks", _resend_path(endpoint["id"], delivery["id"]))
    crossed = await post_form(ui, "/ui/webhooks", _resend_path(mine["id"], delivery["id"]))

    assert (status, "NOT_FOUND" in html) == (404, True)
    assert _listed(listing, "endpoint") == [mine["id"]]
    assert (resent[0], crossed[0]) == (404, 404)
    assert (await _delivery(ui, tenant, endpoint["id"], delivery["id"]))["status"] == "failed"
    assert (await get_page(ui, "/ui/webhooks/not-a-uuid"))[0] == 400
