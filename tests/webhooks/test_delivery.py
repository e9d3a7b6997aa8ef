"""A run that is done reaches a subscribed receiver as a signed webhook the Standard Webhooks
verifier accepts, carrying the run exactly as GET returns it."""

from __future__ import annotations

import json

from service.core.settings import Settings
from service.db.postgres import Pool
from tests.support.api import Client, Tenant, created
from tests.support.receiver import Receiver
from tests.support.run_api import MUST_SAY_REFUND, get_run, running_pipeline, scripted_case, trigger


async def test_a_done_run_is_delivered_signed_with_the_run_as_get_returns_it(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    endpoint = await created(client, tenant, "/webhooks", {"url": f"{receiver.url}/hooks"})
    case = await scripted_case(client, tenant, success_criteria=[MUST_SAY_REFUND])

    async with running_pipeline(hook_settings, pool):
        run = await trigger(client, tenant, case["id"], prefer="wait=30")
        (received,) = await receiver.wait_for(1)

    assert run.status == 200, run.body
    payload = received.verify(endpoint["secret"])
    assert isinstance(payload, dict)
    assert payload["type"] == "agent_eval.run.done"
    assert payload["data"] == (await get_run(client, tenant, run.body["id"])).body
    assert received.path == "/hooks"
    assert received.headers["Content-Type"] == "application/json"
    body = json.loads(received.body)
    assert body["sequence"] >= 1
    assert "timestamp" in body
