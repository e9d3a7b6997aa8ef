"""`kill -9` of the notifier in the middle of a delivery loses nothing: on real Kafka and
PostgreSQL, with the whole pipeline as separate processes, a delivery cut off while the receiver
was answering is sent again (same `webhook-id`) by the next notifier once its claim lapses, and
every run's `run.done` reaches the receiver."""

from __future__ import annotations

import json
import signal

import pytest

from service.bus.kafka import KafkaBus
from service.bus.topics import topic_specs
from service.core.settings import Settings
from service.db.postgres import Pool, connection
from tests.support.api import Client, Tenant, created
from tests.support.executor_processes import fleet, logged, ready, role_env
from tests.support.live import TEST_WEBHOOK_KEY
from tests.support.processes import AGENT_EVAL, spawned
from tests.support.receiver import Answer, Receiver
from tests.support.run_api import MUST_SAY_REFUND, scripted_case, trigger
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka

RUNS = 4


async def _statuses(pool: Pool, endpoint_id: str) -> list[str]:
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT status FROM webhook_deliveries WHERE endpoint_id = $1::uuid ORDER BY created_at",
            endpoint_id,
        )
    return [r["status"] for r in rows]


async def test_a_notifier_killed_mid_delivery_loses_no_delivery(
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    kafka: KafkaBus,
    database_url: str,
    kafka_bootstrap: str,
) -> None:
    await kafka.create_topics(topic_specs(hook_settings.topic_prefix, 1, 1))
    env = role_env(
        database_url,
        kafka_bootstrap,
        hook_settings.topic_prefix,
        AGENT_EVAL_WEBHOOK_SECRET_KEYS=TEST_WEBHOOK_KEY,
        AGENT_EVAL_WEBHOOK_ALLOW_PRIVATE="true",
        AGENT_EVAL_WEBHOOK_LEASE_S="2",
        AGENT_EVAL_WEBHOOK_POLL_S="0.1",
    )
    endpoint = await created(client, tenant, "/webhooks", {"url": f"{receiver.url}/hooks"})
    case = await scripted_case(client, tenant, success_criteria=[MUST_SAY_REFUND])
    receiver.script(Answer(delay_s=30))  # the first delivery hangs until its notifier dies

    with fleet(env, executors=1, roles=("scorer", "biller")) as running:
        await ready(running)
        with spawned([AGENT_EVAL, "consume", "notifier"], env) as notifier:
            await logged(notifier, "consumer_started")
            runs = [(await trigger(client, tenant, case["id"])).body["id"] for _ in range(RUNS)]
            await receiver.wait_for(1, timeout_s=60)
            notifier.signal(signal.SIGKILL)
            notifier.wait()
        with spawned([AGENT_EVAL, "consume", "notifier"], env) as successor:
            await logged(successor, "consumer_started")

            async def all_delivered() -> bool:
                statuses = await _statuses(pool, endpoint["id"])
                return len(statuses) == RUNS and set(statuses) == {"succeeded"}

            await eventually(all_delivered, timeout_s=60, what=f"{RUNS} deliveries succeeded")

    first = receiver.received[0]
    repeats = [r for r in receiver.received if r.webhook_id == first.webhook_id]
    assert len(repeats) == 2  # cut off once, then delivered by the successor
    delivered_runs = {json.loads(r.body)["data"]["id"] for r in receiver.received}
    assert delivered_runs == set(runs)
    for received in receiver.received:
        received.verify(endpoint["secret"])
