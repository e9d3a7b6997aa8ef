"""The in-process bus: Kafka's model (partitions, keyed order, groups, offsets) inside one process.

Used by `agent-eval dev` and by fast tests. Records live in memory: a partition's log is trimmed
below the lowest offset every group has committed, so a long `dev` session stays small. Nothing
survives a restart, which is fine: PostgreSQL is the truth and the maintenance sweeps re-dispatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from service.bus.interface import (
    Message,
    OutgoingRecord,
    PartitionsCallback,
    Published,
    TopicPartition,
    TopicSpec,
)
from service.core.errors import BusError, CommitFailed


@dataclass
class _Log:
    base: int = 0
    records: list[Message] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.base + len(self.records)

    def read(self, position: int, limit: int) -> list[Message]:
        start = max(position, self.base) - self.base
        return self.records[start : start + limit]

    def trim_below(self, offset: int) -> None:
        drop = min(offset, self.end) - self.base
        if drop > 0:
            del self.records[:drop]
            self.base += drop


@dataclass
class _Group:
    name: str
    members: list[InProcessSubscription] = field(default_factory=list)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def partition_for(key: bytes | None, partitions: int, counter: int) -> int:
    """Keyed records always land in the same partition; unkeyed ones are spread round-robin."""
    if key is None:
        return counter % partitions
    return zlib.crc32(key) % partitions


class InProcessBus:
    """Implements `service.bus.interface.Bus`."""

    def __init__(self) -> None:
        self._logs: dict[str, list[_Log]] = {}
        self._groups: dict[str, _Group] = {}
        self._arrived = asyncio.Condition()
        self._unkeyed = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for group in list(self._groups.values()):
            for member in list(group.members):
                await member.stop()

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[Published]:
        published: list[Published] = []
        for record in records:
            logs = self._logs.get(record.topic)
            if logs is None:
                raise BusError(f"topic {record.topic} does not exist")
            self._unkeyed += record.key is None
            index = partition_for(record.key, len(logs), self._unkeyed)
            log = logs[index]
            published.append(Published(index, log.end))
            log.records.append(
                Message(record.topic, index, log.end, record.key, record.value, tuple(record.headers))
            )
        async with self._arrived:
            self._arrived.notify_all()
        return published

    async def create_topics(self, specs: Sequence[TopicSpec]) -> list[str]:
        created = [spec.name for spec in specs if spec.name not in self._logs]
        for spec in specs:
            self._logs.setdefault(spec.name, [_Log() for _ in range(spec.partitions)])
        for group in self._groups.values():
            await self._rebalance(group)
        return created

    async def delete_topics(self, names: Sequence[str]) -> None:
        for name in names:
            self._logs.pop(name, None)
        for group in self._groups.values():
            group.committed = {tp: o for tp, o in group.committed.items() if tp.topic in self._logs}
            await self._rebalance(group)

    async def list_topics(self) -> set[str]:
        return set(self._logs)

    def subscribe(
        self,
        group: str,
        topics: Sequence[str],
        *,
        on_assigned: PartitionsCallback,
        on_revoked: PartitionsCallback,
    ) -> InProcessSubscription:
        state = self._groups.setdefault(group, _Group(group))
        return InProcessSubscription(self, state, tuple(topics), on_assigned, on_revoked)

    async def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Message]:
        return [m for log in self._logs.get(topic, []) for m in log.records]

    async def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        return {TopicPartition(topic, i): log.end for i, log in enumerate(self._logs.get(topic, []))}

    async def committed(self, group: str, topic: str) -> dict[TopicPartition, int]:
        state = self._groups.get(group)
        if state is None:
            return {}
        return {tp: offset for tp, offset in state.committed.items() if tp.topic == topic}

    # --- used by subscriptions ---------------------------------------------------------------

    def _log(self, tp: TopicPartition) -> _Log | None:
        logs = self._logs.get(tp.topic)
        if logs is None or tp.partition >= len(logs):
            return None
        return logs[tp.partition]

    async def _rebalance(self, group: _Group) -> None:
        """Spread the group's partitions over its members: revoke first, then assign."""
        async with group.lock:
            members = list(group.members)
            topics = sorted({t for m in members for t in m.topics if t in self._logs})
            partitions = [TopicPartition(t, i) for t in topics for i in range(len(self._logs[t]))]
            target = {
                id(m): {tp for i, tp in enumerate(partitions) if i % len(members) == n}
                for n, m in enumerate(members)
            }
            for member in members:
                lost = member.assigned - target[id(member)]
                if lost:
                    await member._revoke(frozenset(lost))
            for member in members:
                gained = target[id(member)] - member.assigned
                if gained:
                    await member._assign(frozenset(gained))
        async with self._arrived:
            self._arrived.notify_all()

    def _trim(self, tp: TopicPartition) -> None:
        log = self._log(tp)
        if log is None:
            return
        floors = [g.committed.get(tp, 0) for g in self._groups.values() if _subscribes(g, tp.topic)]
        if floors:
            log.trim_below(min(floors))


def _subscribes(group: _Group, topic: str) -> bool:
    return any(topic in m.topics for m in group.members) or any(tp.topic == topic for tp in group.committed)


class InProcessSubscription:
    """Implements `service.bus.interface.Subscription` for `InProcessBus`."""

    def __init__(
        self,
        bus: InProcessBus,
        group: _Group,
        topics: tuple[str, ...],
        on_assigned: PartitionsCallback,
        on_revoked: PartitionsCallback,
    ) -> None:
        self._bus = bus
        self._group = group
        self.topics = topics
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self.assigned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self._joined = False

    async def start(self) -> None:
        if self._joined:
            return
        self._joined = True
        self._group.members.append(self)
        await self._bus._rebalance(self._group)

    async def stop(self) -> None:
        if not self._joined:
            return
        self._joined = False
        if self.assigned:
            await self._revoke(frozenset(self.assigned))
        self._group.members.remove(self)
        await self._bus._rebalance(self._group)

    async def fetch(self, timeout_s: float, max_records: int) -> Mapping[TopicPartition, Sequence[Message]]:
        async with self._bus._arrived:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._bus._arrived.wait_for(self._has_records), timeout_s)
        batch: dict[TopicPartition, Sequence[Message]] = {}
        budget = max_records
        for tp in sorted(self.assigned - self._paused):
            log = self._bus._log(tp)
            if log is None or budget <= 0:
                continue
            records = log.read(self._positions[tp], budget)
            if records:
                batch[tp] = records
                self._positions[tp] = records[-1].offset + 1
                budget -= len(records)
        return batch

    def _has_records(self) -> bool:
        for tp in self.assigned - self._paused:
            log = self._bus._log(tp)
            if log is not None and self._positions[tp] < log.end:
                return True
        return not self._joined

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        foreign = [tp for tp in offsets if tp not in self.assigned]
        if foreign:
            raise CommitFailed(f"partitions no longer assigned to this member: {foreign}")
        for tp, offset in offsets.items():
            self._group.committed[tp] = offset
            self._bus._trim(tp)

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(self.assigned)

    def pause(self, partitions: frozenset[TopicPartition]) -> None:
        self._paused |= partitions & self.assigned

    def resume(self, partitions: frozenset[TopicPartition]) -> None:
        self._paused -= partitions

    async def _revoke(self, partitions: frozenset[TopicPartition]) -> None:
        await self._on_revoked(partitions)
        self.assigned -= partitions
        self._paused -= partitions
        for tp in partitions:
            self._positions.pop(tp, None)

    async def _assign(self, partitions: frozenset[TopicPartition]) -> None:
        for tp in partitions:
            log = self._bus._log(tp)
            base = log.base if log is not None else 0
            self._positions[tp] = max(self._group.committed.get(tp, base), base)
        self.assigned |= partitions
        await self._on_assigned(partitions)
