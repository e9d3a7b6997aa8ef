"""The notifier's batching fetch on real Kafka: the broker holds a fetch for up to 64 KiB or 100 ms,
and a lone record must still come through (after the wait), as must a burst, in order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from consumers.role import BATCHED_FETCH
from service.bus.kafka import KafkaBus
from service.core.ids import new_id
from tests.integration.test_bus_conformance import Collector, committed_total, make_topic, start
from tests.support.events import record_for, run_request
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka


@pytest.fixture
async def batching(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(
        kafka_bootstrap,
        client_id="tests",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        fetch=BATCHED_FETCH,
    )
    await bus.start()
    yield bus
    await bus.delete_topics([t for t in await bus.list_topics() if t.startswith(topic_prefix)])
    await bus.stop()


async def _count(collector: Collector) -> int:
    return len(collector.handled)


async def test_a_lone_record_and_then_a_burst_reach_a_batching_member(
    batching: KafkaBus, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}batched"
    await make_topic(batching, topic)
    collector = Collector()
    running = await start(batching, f"{topic}.g", topic, collector)

    lone = run_request(new_id())
    await batching.publish([record_for(lone, topic)])
    await eventually(lambda: _count(collector), until=lambda n: n == 1, timeout_s=10, what="the lone record")

    run_id = new_id()
    burst = [run_request(run_id) for _ in range(300)]
    await batching.publish([record_for(e, topic) for e in burst])
    await eventually(lambda: _count(collector), until=lambda n: n == 301, what="the burst")
    await running.stop()

    assert [e.id for e in collector.handled] == [lone.id, *(e.id for e in burst)]
    assert await committed_total(batching, f"{topic}.g", topic) == 301
