"""The README's webhook and stream examples work as written: its `verify` accepts real deliveries
(and refuses a wrong secret), and its Kafka consumer follows a company's runs in order, each
event once, on the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from schemas.events import Topic
from service.bus.interface import OutgoingRecord
from service.bus.kafka import KafkaBus
from service.bus.topics import topic_name
from service.core.settings import Settings
from service.db.postgres import Pool
from tests.support.api import Client, Tenant, created
from tests.support.pipeline import pipeline
from tests.support.receiver import Receiver
from tests.support.run_api import MUST_SAY_REFUND, running_pipeline, scripted_case, trigger
from tests.support.waiting import eventually

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(marker: str) -> dict[str, Any]:
    """Run the python block that follows `<!-- marker -->` and return what it defines."""
    match = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert match, f"README.md has no {marker} block"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), f"README.md:{marker}", "exec"), namespace)  # noqa: S102 — the README's own example
    return namespace


async def test_the_readme_verify_accepts_a_real_delivery_and_refuses_a_wrong_secret(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    verify: Callable[[str, bytes, dict[str, str]], dict[str, Any]] = readme_block("verify")["verify"]
    endpoint = await created(client, tenant, "/webhooks", {"url": receiver.url})
    async with running_pipeline(hook_settings, pool):
        answer = await client.post(f"/webhooks/{endpoint['id']}/test", headers=tenant.headers())
        assert answer.status == 202
        (delivery,) = await receiver.wait_for(1)

    payload = verify(endpoint["secret"], delivery.body, delivery.headers)
    assert payload["type"] == "agent_eval.ping"
    other = (await created(client, tenant, "/webhooks", {"url": receiver.url}))["secret"]
    with pytest.raises(WebhookVerificationError):
        verify(other, delivery.body, delivery.headers)


@pytest.mark.kafka
async def test_the_readme_consumer_follows_a_companys_runs_in_order_each_event_once(
    client: Client,
    tenant: Tenant,
    stranger: Tenant,
    hook_settings: Settings,
    pool: Pool,
    kafka: KafkaBus,
    kafka_bootstrap: str,
) -> None:
    follow = readme_block("consumer")["follow"]
    handled: list[dict[str, Any]] = []
    topic = topic_name(hook_settings.topic_prefix, Topic.RUN_EVENTS)
    mine = await scripted_case(client, tenant, success_criteria=[MUST_SAY_REFUND])
    theirs = await scripted_case(client, stranger, success_criteria=[MUST_SAY_REFUND])

    async with pipeline(hook_settings, pool, kafka, roles=("executor", "scorer", "biller")):
        following = asyncio.create_task(
            follow(tenant.company_id, handled.append, bootstrap=kafka_bootstrap, topic=topic, group="readme")
        )
        try:
            run = (await trigger(client, tenant, mine["id"], prefer="wait=30")).body
            await trigger(client, stranger, theirs["id"], prefer="wait=30")
            await eventually(lambda: _has_done(handled), timeout_s=30, what="run.done handed over")
            records = await kafka.read_all(topic)
            again = next(r for r in records if r.key == run["id"].encode())
            await kafka.publish([OutgoingRecord(topic, again.key, again.value, tuple(again.headers))])
            await asyncio.sleep(1.0)  # time for the duplicate to arrive (and be skipped)
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following

    assert {event["run_id"] for event in handled} == {run["id"]}
    assert [event["sequence"] for event in handled] == list(range(1, len(handled) + 1))
    assert handled[-1]["type"] == "agent_eval.run.done"
    assert len({event["id"] for event in handled}) == len(handled)


async def _has_done(handled: list[dict[str, Any]]) -> bool:
    return any(event["type"] == "agent_eval.run.done" for event in handled)
