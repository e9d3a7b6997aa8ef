"""The publish/subscribe interface both buses implement (Kafka, and in-process for `dev` and tests).

The interface is deliberately Kafka-shaped and small: topics split into partitions, a record's
key picks its partition (so one key is always in order), consumer groups share partitions and
commit offsets. `consumers.runner` is the one loop built on `Subscription`; it behaves the same on
either bus, which the shared conformance tests prove.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Message:
    """A record as a consumer receives it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Published:
    """Where the bus put a record: its partition and offset. The record waits for the group
    while the group's committed offset for that partition is at or below `offset`."""

    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """When the broker answers a group member's fetch: once it holds `min_bytes` (bytes) of records
    for it, or after `max_wait_ms` (milliseconds), whichever comes first. Bigger batches mean fewer
    round trips and wake-ups per record, for up to `max_wait_ms` more latency per hop. The
    in-process buses hand records over at once and ignore it."""

    min_bytes: int = 1
    max_wait_ms: int = 500


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1


PartitionsCallback = Callable[[frozenset[TopicPartition]], Awaitable[None]]


class Subscription(Protocol):
    """One member of a consumer group. `fetch` never commits; the caller commits what it processed."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Leave the group (partitions move to other members at once)."""

    async def fetch(self, timeout_s: float, max_records: int) -> Mapping[TopicPartition, Sequence[Message]]:
        """Records from assigned, unpaused partitions, in offset order per partition."""
        ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Record `offset` (the next one to read) for each partition, for the whole group."""

    def assignment(self) -> frozenset[TopicPartition]: ...

    def pause(self, partitions: frozenset[TopicPartition]) -> None: ...

    def resume(self, partitions: frozenset[TopicPartition]) -> None: ...


class Bus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[Published]:
        """Publish in order (per partition) and return once every record is acknowledged: where
        each one went, in the order given."""
        ...

    async def create_topics(self, specs: Sequence[TopicSpec]) -> list[str]:
        """Create the topics that do not exist yet; returns the names created."""
        ...

    async def delete_topics(self, names: Sequence[str]) -> None: ...

    async def list_topics(self) -> set[str]: ...

    def subscribe(
        self,
        group: str,
        topics: Sequence[str],
        *,
        on_assigned: PartitionsCallback,
        on_revoked: PartitionsCallback,
    ) -> Subscription:
        """A new group member; `on_revoked` runs before partitions move away (commit there)."""
        ...

    async def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Message]:
        """Every record currently in `topic`, without joining a group (for tools such as `dlq list`)."""
        ...

    async def end_offsets(self, topic: str) -> dict[TopicPartition, int]: ...

    async def committed(self, group: str, topic: str) -> dict[TopicPartition, int]:
        """The group's committed offsets for `topic` (partitions without one are absent)."""
        ...
