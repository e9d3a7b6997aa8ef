"""`/webhooks/{id}` deliveries through the API with the notifier running: secret rotation, test
sends, the delivery log, resend and recover, and which endpoints a run's events reach."""

from __future__ import annotations

import contextlib
import json

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from service.core.settings import Settings
from service.db.postgres import Pool, connection
from tests.support.api import Client, Json, Tenant, created, listed, refused_field, refused_query
from tests.support.receiver import Answer, Receiver, running_receiver
from tests.support.run_api import MUST_SAY_REFUND, running_pipeline, scripted_case, trigger
from tests.support.waiting import eventually

WEBHOOKS = "/webhooks"
RUN_DONE, RUN_TURN = "agent_eval.run.done", "agent_eval.run.turn"


async def _test_send(client: Client, tenant: Tenant, endpoint_id: str) -> Json:
    response = await client.post(f"{WEBHOOKS}/{endpoint_id}/test", headers=tenant.headers())
    delivery: Json = await response.json()
    assert response.status == 202, delivery
    return delivery


async def _delivery(client: Client, tenant: Tenant, endpoint_id: str, delivery_id: str) -> Json:
    response = await client.get(
        f"{WEBHOOKS}/{endpoint_id}/deliveries/{delivery_id}", headers=tenant.headers()
    )
    delivery: Json = await response.json()
    assert response.status == 200, delivery
    return delivery


async def _settled(
    client: Client, tenant: Tenant, endpoint_id: str, delivery_id: str, attempts: int = 1
) -> Json:
    """The delivery once its `attempts`-th attempt is recorded and it is no longer pending."""
    return await eventually(
        lambda: _delivery(client, tenant, endpoint_id, delivery_id),
        until=lambda d: d["status"] != "pending" and d["attempts"] >= attempts,
        timeout_s=20,
        what=f"delivery {delivery_id} settled after {attempts} attempt(s)",
    )


async def _rotated(client: Client, tenant: Tenant, endpoint_id: str, body: Json | None = None) -> Json:
    response = await client.post(
        f"{WEBHOOKS}/{endpoint_id}/rotate-secret", json=body, headers=tenant.headers()
    )
    rotated: Json = await response.json()
    assert response.status == 200, rotated
    return rotated


async def _pinged(
    client: Client, tenant: Tenant, endpoint_id: str, receiver: Receiver, settings: Settings, pool: Pool
) -> str:
    """Send a test delivery with the notifier running; the `webhook-signature` it carried."""
    async with running_pipeline(settings, pool):
        await _test_send(client, tenant, endpoint_id)
        (received,) = await receiver.wait_for(1)
    return received.headers["webhook-signature"]


async def test_rotation_answers_a_new_secret_and_both_sign_during_the_grace_period(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    endpoint = await created(client, tenant, WEBHOOKS, {"url": receiver.url})
    rotated = await _rotated(client, tenant, endpoint["id"])
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != endpoint["secret"]
    assert rotated["previous_secret_expires_at"] > rotated["updated_at"]

    signature = await _pinged(client, tenant, endpoint["id"], receiver, hook_settings, pool)

    assert [s[:3] for s in signature.split(" ")] == ["v1,", "v1,"]
    receiver.received[0].verify(endpoint["secret"])
    receiver.received[0].verify(rotated["secret"])


async def test_rotation_without_grace_signs_with_the_new_secret_only(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    endpoint = await created(client, tenant, WEBHOOKS, {"url": receiver.url})
    rotated = await _rotated(client, tenant, endpoint["id"], {"grace_period_s": 0})

    signature = await _pinged(client, tenant, endpoint["id"], receiver, hook_settings, pool)

    assert len(signature.split(" ")) == 1
    receiver.received[0].verify(rotated["secret"])
    with pytest.raises(WebhookVerificationError):
        receiver.received[0].verify(endpoint["secret"])


async def test_a_second_rotation_retires_the_first_secret(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    first = await created(client, tenant, WEBHOOKS, {"url": receiver.url})
    second = await _rotated(client, tenant, first["id"])
    third = await _rotated(client, tenant, first["id"])

    signature = await _pinged(client, tenant, first["id"], receiver, hook_settings, pool)

    assert len(signature.split(" ")) == 2
    receiver.received[0].verify(second["secret"])
    receiver.received[0].verify(third["secret"])
    with pytest.raises(WebhookVerificationError):
        receiver.received[0].verify(first["secret"])


@pytest.mark.parametrize("grace", [-1, 7 * 86_400 + 1, "60", 1.5])
async def test_a_bad_grace_period_is_refused(client: Client, tenant: Tenant, grace: object) -> None:
    endpoint = await created(client, tenant, WEBHOOKS, {"url": "http://127.0.0.1:9/"})
    response = await client.post(
        f"{WEBHOOKS}/{endpoint['id']}/rotate-secret", json={"grace_period_s": grace}, headers=tenant.headers()
    )
    await refused_field(response, "body.grace_period_s")


async def test_a_test_send_is_signed_and_logged_with_its_attempt(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    endpoint = await created(client, tenant, WEBHOOKS, {"url": f"{receiver.url}/hooks"})
    async with running_pipeline(hook_settings, pool):
        queued = await _test_send(client, tenant, endpoint["id"])
        (received,) = await receiver.wait_for(1)
        delivery = await _settled(client, tenant, endpoint["id"], queued["id"])

    assert (queued["event_type"], queued["status"], queued["attempts"]) == ("agent_eval.ping", "pending", 0)
    assert (queued["endpoint_id"], queued["run_id"]) == (endpoint["id"], None)
    payload = received.verify(endpoint["secret"])
    assert isinstance(payload, dict)
    assert (payload["type"], payload["data"]["endpoint_id"]) == ("agent_eval.ping", endpoint["id"])
    assert received.webhook_id == queued["event_id"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("succeeded", 1, 200)
    assert (delivery["next_attempt_at"], delivery["last_error"]) == (None, None)
    assert delivery["succeeded_at"] is not None
    (attempt,) = delivery["attempt_log"]
    assert (attempt["number"], attempt["status_code"], attempt["error"], attempt["response"]) == (
        1,
        200,
        None,
        "ok",
    )
    assert delivery["payload"] == json.loads(received.body)


async def test_the_delivery_log_is_newest_first_and_filters_by_status(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    endpoint = await created(client, tenant, WEBHOOKS, {"url": receiver.url})
    deliveries = f"{WEBHOOKS}/{endpoint['id']}/deliveries"
    async with running_pipeline(hook_settings, pool):
        sent = await _test_send(client, tenant, endpoint["id"])
        await _settled(client, tenant, endpoint["id"], sent["id"])
    waiting = await _test_send(client, tenant, endpoint["id"])  # no notifier now: it stays pending

    page = await listed(client, tenant, deliveries)
    assert [d["id"] for d in page["data"]] == [waiting["id"], sent["id"]]
    assert page["pagination"] == {"total": 2, "limit": 20, "offset": 0, "has_more": False}
    succeeded = await listed(client, tenant, f"{deliveries}?status=succeeded")
    assert [(d["id"], d["status"]) for d in succeeded["data"]] == [(sent["id"], "succeeded")]
    assert succeeded["pagination"]["total"] == 1
    pending = await listed(client, tenant, f"{deliveries}?status=pending")
    assert [d["id"] for d in pending["data"]] == [waiting["id"]]
    assert pending["data"][0]["next_attempt_at"] is not None
    for query in ("status=lost", "limit=0", "sort=id"):
        await refused_query(client, tenant, f"{deliveries}?{query}")


async def test_disabling_an_endpoint_fails_its_pending_deliveries(client: Client, tenant: Tenant) -> None:
    endpoint = await created(client, tenant, WEBHOOKS, {"url": "http://127.0.0.1:9/"})
    waiting = await _test_send(client, tenant, endpoint["id"])  # no notifier: it stays pending
    response = await client.post(f"{WEBHOOKS}/{endpoint['id']}/disable", headers=tenant.headers())
    assert response.status == 200
    delivery = await _delivery(client, tenant, endpoint["id"], waiting["id"])
    assert (delivery["status"], delivery["attempts"], delivery["next_attempt_at"]) == ("failed", 0, None)
    assert delivery["last_error"] == "the endpoint was disabled"


async def test_resend_sends_the_same_webhook_id_again(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    endpoint = await created(client, tenant, WEBHOOKS, {"url": receiver.url})
    async with running_pipeline(hook_settings, pool):
        sent = await _test_send(client, tenant, endpoint["id"])
        await _settled(client, tenant, endpoint["id"], sent["id"])
        response = await client.post(
            f"{WEBHOOKS}/{endpoint['id']}/deliveries/{sent['id']}/resend", headers=tenant.headers()
        )
        resent = await response.json()
        assert response.status == 202, resent
        first, again = await receiver.wait_for(2)
        delivery = await _settled(client, tenant, endpoint["id"], sent["id"], attempts=2)

    assert (resent["id"], resent["status"], resent["attempts"]) == (sent["id"], "pending", 1)
    assert first.webhook_id == again.webhook_id == sent["event_id"]
    assert first.body == again.body
    again.verify(endpoint["secret"])
    assert delivery["status"] == "succeeded"
    assert [a["number"] for a in delivery["attempt_log"]] == [1, 2]


async def _endpoint_now(client: Client, tenant: Tenant, url: str) -> Json:
    response = await client.get(url, headers=tenant.headers())
    endpoint: Json = await response.json()
    return endpoint


async def _recover(client: Client, tenant: Tenant, url: str, window: Json) -> Json:
    response = await client.post(f"{url}/recover", json=window, headers=tenant.headers())
    recovered: Json = await response.json()
    assert response.status == 202, recovered
    return recovered


async def test_recover_sends_again_what_failed_in_the_window(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    gone = Receiver()
    gone.default = Answer(status=410)
    async with running_receiver(gone):
        endpoint = await created(client, tenant, WEBHOOKS, {"url": gone.url})
        url = f"{WEBHOOKS}/{endpoint['id']}"
        case = await scripted_case(client, tenant, success_criteria=[MUST_SAY_REFUND])
        async with running_pipeline(hook_settings, pool):
            assert (await trigger(client, tenant, case["id"], prefer="wait=30")).status == 200
            (refused,) = await gone.wait_for(1)
            disabled = await eventually(
                lambda: _endpoint_now(client, tenant, url), until=lambda e: not e["enabled"], what="disabled"
            )
            (failed,) = (await listed(client, tenant, f"{url}/deliveries?status=failed"))["data"]
            change = {"url": receiver.url, "enabled": True}
            assert (await client.patch(url, json=change, headers=tenant.headers())).status == 200
            before = {"since": endpoint["created_at"], "until": failed["created_at"]}
            assert await _recover(client, tenant, url, before) == {"recovered": 0}
            assert await _recover(client, tenant, url, {"since": endpoint["created_at"]}) == {"recovered": 1}
            (again,) = await receiver.wait_for(1)
            delivery = await _settled(client, tenant, endpoint["id"], failed["id"], attempts=2)

    assert (disabled["disabled_reason"], len(gone.received)) == ("the receiver answered 410 Gone", 1)
    assert (failed["event_type"], failed["last_status_code"]) == (RUN_DONE, 410)
    assert refused.webhook_id == again.webhook_id == failed["event_id"]
    assert refused.body == again.body
    again.verify(endpoint["secret"])
    assert delivery["status"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempt_log"]] == [410, 200]
    assert await _recover(client, tenant, url, {"since": endpoint["created_at"]}) == {"recovered": 0}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-02T00:00:00Z"}, "body"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "body"),
        ({"since": "2026-01-02T00:00:00"}, "body.since"),
        ({}, "body.since"),
    ],
)
async def test_a_bad_recover_window_is_refused(
    client: Client, tenant: Tenant, body: Json, field: str
) -> None:
    endpoint = await created(client, tenant, WEBHOOKS, {"url": "http://127.0.0.1:9/"})
    response = await client.post(f"{WEBHOOKS}/{endpoint['id']}/recover", json=body, headers=tenant.headers())
    await refused_field(response, field)


async def _delivered_types(pool: Pool, endpoint_id: str) -> list[str]:
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT event_type FROM webhook_deliveries WHERE endpoint_id = $1::uuid", endpoint_id
        )
    return [r["event_type"] for r in rows]


async def test_run_events_reach_only_the_companys_enabled_subscribed_endpoints(
    client: Client, tenant: Tenant, stranger: Tenant, hook_settings: Settings, pool: Pool
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        done_rx, turn_rx, off_rx, their_rx = [
            await stack.enter_async_context(running_receiver()) for _ in range(4)
        ]
        both = [RUN_DONE, RUN_TURN]
        done_ep = await created(client, tenant, WEBHOOKS, {"url": done_rx.url, "event_types": [RUN_DONE]})
        turn_ep = await created(client, tenant, WEBHOOKS, {"url": turn_rx.url, "event_types": [RUN_TURN]})
        off_ep = await created(
            client, tenant, WEBHOOKS, {"url": off_rx.url, "event_types": both, "enabled": False}
        )
        their_ep = await created(client, stranger, WEBHOOKS, {"url": their_rx.url, "event_types": both})
        case = await scripted_case(client, tenant, success_criteria=[MUST_SAY_REFUND])
        async with running_pipeline(hook_settings, pool):
            run = await trigger(client, tenant, case["id"], prefer="wait=30")
            assert run.status == 200, run.body
            response = await client.get(f"/agent-eval/runs/{run.body['id']}/turns", headers=tenant.headers())
            turns = (await response.json())["data"]
            await done_rx.wait_for(1)
            await turn_rx.wait_for(len(turns))

    (done,) = [json.loads(r.body) for r in done_rx.received]
    assert (done["type"], done["data"]["id"]) == (RUN_DONE, run.body["id"])
    done_rx.received[0].verify(done_ep["secret"])
    turn_bodies = sorted((json.loads(r.body) for r in turn_rx.received), key=lambda b: b["sequence"])
    assert {b["type"] for b in turn_bodies} == {RUN_TURN}
    assert [b["data"] for b in turn_bodies] == turns
    assert all("text" in b["data"] for b in turn_bodies)
    assert "Hello, how can I help?" in [b["data"]["text"] for b in turn_bodies]  # the agent's greeting
    for received in turn_rx.received:
        received.verify(turn_ep["secret"])
    assert (off_rx.received, their_rx.received) == ([], [])
    assert await _delivered_types(pool, off_ep["id"]) == []
    assert await _delivered_types(pool, their_ep["id"]) == []
