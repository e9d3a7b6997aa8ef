"""The smoke test that chose the Kafka version: aiokafka 0.14 against the broker from Maven Central."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka


async def test_aiokafka_creates_produces_consumes_commits_and_deletes(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}smoke"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            for i in range(5):
                await producer.send_and_wait(
                    topic, f"v{i}".encode(), key=b"k", headers=[("ce_type", b"smoke")]
                )
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=f"{topic}.group",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            values: list[bytes] = []
            while len(values) < 5:
                batch = await consumer.getmany(timeout_ms=1000)
                values += [record.value for records in batch.values() for record in records]
            await consumer.commit()
            assert values == [f"v{i}".encode() for i in range(5)]
            assert await consumer.committed(TopicPartition(topic, 0)) == 5
        finally:
            await consumer.stop()
        await admin.delete_topics([topic])

        async def topics() -> list[str]:
            listed: list[str] = await admin.list_topics()
            return listed

        await eventually(topics, until=lambda names: topic not in names, what="the topic to be deleted")
    finally:
        await admin.close()
