"""The Kafka bus (aiokafka): idempotent producer, manual-commit consumer groups, an admin client.

Consumers never auto-commit and start from the earliest offset when their group has none; the
runner commits what it processed. aiokafka's own defaults differ (auto-commit on, `latest`,
non-idempotent producer with acks=1) — every one of them is overridden here on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka import TopicPartition as KafkaTP
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    RebalanceInProgressError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from aiokafka.helpers import create_ssl_context

from service.bus.interface import (
    FetchPolicy,
    Message,
    OutgoingRecord,
    PartitionsCallback,
    Published,
    TopicPartition,
    TopicSpec,
)
from service.core.clock import SYSTEM_CLOCK
from service.core.errors import BusError, CommitFailed

METADATA_WAIT_S = 30.0
DEFAULT_FETCH = FetchPolicy()  # aiokafka's own defaults: answer at once, long-poll 500 ms when idle


def _ours(tp: KafkaTP) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


def _theirs(tp: TopicPartition) -> KafkaTP:
    return KafkaTP(tp.topic, tp.partition)


@dataclass(frozen=True)
class KafkaSecurity:
    """How every client of the bus authenticates: plain, TLS, SASL (PLAIN or SCRAM), or SASL
    over TLS. Settings check that the parts fit together (`kafka_security_problem`)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumers and admin client."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol.endswith("SSL"):
            options["ssl_context"] = create_ssl_context(
                cafile=None if self.cafile is None else str(self.cafile),
                certfile=None if self.certfile is None else str(self.certfile),
                keyfile=None if self.keyfile is None else str(self.keyfile),
            )
        if self.protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password
        return options


class KafkaBus:
    """Implements `service.bus.interface.Bus` on a real Kafka cluster."""

    def __init__(
        self,
        bootstrap: str,
        *,
        security: KafkaSecurity | None = None,
        client_id: str = "agent-eval",
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        fetch: FetchPolicy = DEFAULT_FETCH,
    ) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._security = (security or KafkaSecurity()).client_options()
        self._session_timeout_ms = session_timeout_ms
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._fetch = fetch
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            **self._security,
            enable_idempotence=True,  # implies acks=all; retries cannot duplicate or reorder
            linger_ms=5,
            request_timeout_ms=30_000,
        )
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap, client_id=self._client_id, **self._security
        )
        try:
            await producer.start()
            await admin.start()
        except KafkaError as exc:
            await producer.stop()
            await admin.close()
            raise BusError(f"cannot reach Kafka at {self._bootstrap}: {exc}") from exc
        self._producer, self._admin = producer, admin

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    def _require_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise BusError("the Kafka bus is not started")
        return self._producer

    def _require_admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            raise BusError("the Kafka bus is not started")
        return self._admin

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[Published]:
        producer = self._require_producer()
        try:
            pending = [
                await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers)) for r in records
            ]
            acknowledged = await asyncio.gather(*pending)  # RecordMetadata, in the order sent
        except KafkaError as exc:
            raise BusError(f"publish failed: {exc}") from exc
        return [Published(int(meta.partition), int(meta.offset)) for meta in acknowledged]

    async def create_topics(self, specs: Sequence[TopicSpec]) -> list[str]:
        admin = self._require_admin()
        existing = set(await admin.list_topics())
        wanted = [s for s in specs if s.name not in existing]
        created: list[str] = []
        for spec in wanted:
            try:
                await admin.create_topics([NewTopic(spec.name, spec.partitions, spec.replication_factor)])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                continue  # another process created it meanwhile: the goal is met
        await self._wait_for_metadata([s.name for s in specs])
        return created

    async def _wait_for_metadata(self, names: Sequence[str]) -> None:
        """Block until the producer's metadata knows every topic (producing earlier would fail)."""
        producer = self._require_producer()
        deadline = SYSTEM_CLOCK.monotonic() + METADATA_WAIT_S
        for name in names:
            while True:
                try:
                    if await producer.partitions_for(name):
                        break
                except KafkaError:
                    pass
                if SYSTEM_CLOCK.monotonic() > deadline:
                    raise BusError(f"topic {name} did not appear in metadata within {METADATA_WAIT_S} s")
                await asyncio.sleep(0.05)

    async def delete_topics(self, names: Sequence[str]) -> None:
        admin = self._require_admin()
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if not doomed:
            return
        try:
            await admin.delete_topics(doomed)
        except UnknownTopicOrPartitionError:
            return

    async def list_topics(self) -> set[str]:
        return set(await self._require_admin().list_topics())

    def subscribe(
        self,
        group: str,
        topics: Sequence[str],
        *,
        on_assigned: PartitionsCallback,
        on_revoked: PartitionsCallback,
    ) -> KafkaSubscription:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            **self._security,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._session_timeout_ms,
            heartbeat_interval_ms=self._heartbeat_interval_ms,
            max_poll_interval_ms=300_000,
            fetch_max_wait_ms=self._fetch.max_wait_ms,
            fetch_min_bytes=self._fetch.min_bytes,
        )
        return KafkaSubscription(consumer, tuple(topics), _Listener(on_assigned, on_revoked))

    async def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Message]:
        """Read every record of `topic` from the beginning, outside any group."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            enable_auto_commit=False,
            **self._security,
        )
        await consumer.start()
        try:
            partitions = await self._partitions(topic)
            tps = [KafkaTP(topic, p) for p in sorted(partitions)]
            if not tps:
                return []
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            messages: list[Message] = []
            deadline = SYSTEM_CLOCK.monotonic() + timeout_s
            while await _behind(consumer, ends):
                if SYSTEM_CLOCK.monotonic() > deadline:
                    raise BusError(f"reading {topic} did not finish within {timeout_s} s")
                batch = await consumer.getmany(timeout_ms=200)
                messages.extend(_message(m) for records in batch.values() for m in records)
            return sorted(messages, key=lambda m: (m.partition, m.offset))
        finally:
            await _stop_groupless(consumer)

    async def _partitions(self, topic: str) -> set[int]:
        """The topic's partitions, from the producer's metadata (it fetches what it lacks)."""
        try:
            partitions: set[int] = await self._require_producer().partitions_for(topic)
        except KafkaError as exc:
            raise BusError(f"no metadata for topic {topic}: {exc}") from exc
        return partitions

    async def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, client_id=self._client_id, **self._security
        )
        await consumer.start()
        try:
            tps = [KafkaTP(topic, p) for p in sorted(await self._partitions(topic))]
            ends = await consumer.end_offsets(tps) if tps else {}
            return {_ours(tp): int(offset) for tp, offset in ends.items()}
        finally:
            await _stop_groupless(consumer)

    async def committed(self, group: str, topic: str) -> dict[TopicPartition, int]:
        try:
            offsets = await self._require_admin().list_consumer_group_offsets(group)
        except KafkaError as exc:
            raise BusError(f"cannot read the offsets of group {group}: {exc}") from exc
        return {
            _ours(tp): int(meta.offset)
            for tp, meta in offsets.items()
            if tp.topic == topic and meta.offset >= 0
        }


async def _stop_groupless(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer that has no group. aiokafka 0.14 starts a background task in start() and
    cancels it in stop(); cancelled before it first ran, it re-raises CancelledError out of stop().
    One turn of the event loop lets it start, after which stop() is clean."""
    await asyncio.sleep(0)
    await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[KafkaTP, int]) -> bool:
    """True while the consumer has not reached `ends` on some partition."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


def _message(record: Any) -> Message:
    """Our typed copy of aiokafka's (untyped) ConsumerRecord."""
    return Message(
        topic=str(record.topic),
        partition=int(record.partition),
        offset=int(record.offset),
        key=None if record.key is None else bytes(record.key),
        value=bytes(record.value or b""),
        headers=tuple((str(k), bytes(v)) for k, v in record.headers or ()),
    )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    def __init__(self, on_assigned: PartitionsCallback, on_revoked: PartitionsCallback) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: set[KafkaTP]) -> None:
        await self._on_revoked(frozenset(_ours(tp) for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[KafkaTP]) -> None:
        await self._on_assigned(frozenset(_ours(tp) for tp in assigned))


class KafkaSubscription:
    """Implements `service.bus.interface.Subscription` with an AIOKafkaConsumer."""

    def __init__(self, consumer: AIOKafkaConsumer, topics: tuple[str, ...], listener: _Listener) -> None:
        self._consumer = consumer
        self._topics = topics
        self._listener = listener
        self._started = False

    async def start(self) -> None:
        try:
            await self._consumer.start()
        except KafkaError as exc:
            with contextlib.suppress(Exception):  # release what the failed start opened
                await self._consumer.stop()
            raise BusError(f"consumer could not start: {exc}") from exc
        self._consumer.subscribe(list(self._topics), listener=self._listener)
        self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._consumer.stop()  # sends LeaveGroup: partitions move at once

    async def fetch(self, timeout_s: float, max_records: int) -> Mapping[TopicPartition, Sequence[Message]]:
        try:
            batch = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            raise BusError(f"fetch failed: {exc}") from exc
        return {_ours(tp): [_message(r) for r in records] for tp, records in batch.items()}

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit({_theirs(tp): offset for tp, offset in offsets.items()})
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
            raise CommitFailed(str(exc)) from exc
        except KafkaError as exc:
            raise BusError(f"commit failed: {exc}") from exc

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(_ours(tp) for tp in self._consumer.assignment())

    def pause(self, partitions: frozenset[TopicPartition]) -> None:
        owned = [_theirs(tp) for tp in partitions if tp in self.assignment()]
        if owned:
            self._consumer.pause(*owned)

    def resume(self, partitions: frozenset[TopicPartition]) -> None:
        owned = [_theirs(tp) for tp in partitions if tp in self.assignment()]
        if owned:
            self._consumer.resume(*owned)
