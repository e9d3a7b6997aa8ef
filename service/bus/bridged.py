"""The child's side of a bus bridge (`service.bus.bridge`): a `Bus` whose every call is made on
the parent's bus, so the role running in the child does not know it is not in the parent."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from typing import cast

from service.bus.interface import (
    Message,
    OutgoingRecord,
    PartitionsCallback,
    Published,
    TopicPartition,
    TopicSpec,
)
from service.bus.wire import Peer
from service.core.errors import BusError

Batch = Mapping[TopicPartition, Sequence[Message]]


class BridgedBus:
    """Implements `service.bus.interface.Bus` over a stream to the parent's `BridgeServer`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._peer = Peer(reader, writer, self._serve, lambda op, args: None)
        self._members: dict[int, BridgedSubscription] = {}
        self._ids = itertools.count(1)
        self._reading: asyncio.Task[None] | None = None

    @property
    def closed(self) -> asyncio.Event:
        """Set once the parent is gone."""
        return self._peer.closed

    async def start(self) -> None:
        if self._reading is None:
            self._reading = asyncio.create_task(self._peer.run(), name="bus-bridge")

    async def stop(self) -> None:
        await self._peer.aclose()
        if self._reading is not None:
            await self._reading

    async def greeting(self) -> object:
        """What the parent hands every child first (its settings)."""
        return await self._peer.call("greeting")

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[Published]:
        return cast("list[Published]", await self._peer.call("publish", list(records)))

    async def create_topics(self, specs: Sequence[TopicSpec]) -> list[str]:
        return cast("list[str]", await self._peer.call("create_topics", list(specs)))

    async def delete_topics(self, names: Sequence[str]) -> None:
        await self._peer.call("delete_topics", list(names))

    async def list_topics(self) -> set[str]:
        return cast("set[str]", await self._peer.call("list_topics"))

    def subscribe(
        self,
        group: str,
        topics: Sequence[str],
        *,
        on_assigned: PartitionsCallback,
        on_revoked: PartitionsCallback,
    ) -> BridgedSubscription:
        member = BridgedSubscription(
            self._peer, next(self._ids), group, tuple(topics), on_assigned=on_assigned, on_revoked=on_revoked
        )
        self._members[member.member_id] = member
        return member

    async def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Message]:
        return cast("list[Message]", await self._peer.call("read_all", topic, timeout_s))

    async def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        return cast("dict[TopicPartition, int]", await self._peer.call("end_offsets", topic))

    async def committed(self, group: str, topic: str) -> dict[TopicPartition, int]:
        return cast("dict[TopicPartition, int]", await self._peer.call("committed", group, topic))

    async def _serve(self, op: str, args: tuple[object, ...]) -> object:
        """The group's callbacks, made by the parent on one of this child's members."""
        member_id, partitions = args
        member = self._members.get(cast("int", member_id))
        if member is None:
            raise BusError(f"no member {member_id} in this process")
        if op == "assigned":
            await member.assigned(cast("frozenset[TopicPartition]", partitions))
        elif op == "revoked":
            await member.revoked(cast("frozenset[TopicPartition]", partitions))
        else:
            raise BusError(f"unknown bridge call {op!r}")
        return None


class BridgedSubscription:
    """Implements `service.bus.interface.Subscription`: a member of a group on the parent's bus.
    Its assignment is mirrored here, updated by the group's callbacks."""

    def __init__(
        self,
        peer: Peer,
        member_id: int,
        group: str,
        topics: tuple[str, ...],
        *,
        on_assigned: PartitionsCallback,
        on_revoked: PartitionsCallback,
    ) -> None:
        self._peer = peer
        self.member_id = member_id
        self._group = group
        self._topics = topics
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._assigned: set[TopicPartition] = set()
        self._joined = False

    async def start(self) -> None:
        if not self._joined:
            await self._peer.call("subscribe", self.member_id, self._group, self._topics)
            self._joined = True

    async def stop(self) -> None:
        if self._joined:
            self._joined = False
            if not self._peer.closed.is_set():
                await self._peer.call("unsubscribe", self.member_id)
            self._assigned.clear()

    async def fetch(self, timeout_s: float, max_records: int) -> Batch:
        return cast("Batch", await self._peer.call("fetch", self.member_id, timeout_s, max_records))

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        await self._peer.call("commit", self.member_id, dict(offsets))

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(self._assigned)

    def pause(self, partitions: frozenset[TopicPartition]) -> None:
        self._peer.cast("pause", self.member_id, partitions)

    def resume(self, partitions: frozenset[TopicPartition]) -> None:
        self._peer.cast("resume", self.member_id, partitions)

    async def assigned(self, partitions: frozenset[TopicPartition]) -> None:
        self._assigned |= partitions
        await self._on_assigned(partitions)

    async def revoked(self, partitions: frozenset[TopicPartition]) -> None:
        await self._on_revoked(partitions)
        self._assigned -= partitions
