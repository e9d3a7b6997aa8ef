"""A bus lent to a child process: the parent's side of a bridge (the child's is `BridgedBus`).

`agent-eval dev` runs its executors in child processes while its bus lives in the parent's
memory. Each child reaches that bus over a socket pair: every `Bus` and `Subscription` call of
the child is made here, on the parent's bus, and the group's assignment callbacks are made in the
child (a revocation waits for the child to finish the records in hand and commit, as a Kafka
member does). A child's subscriptions are ordinary members of their groups, so partitions are
spread over the children as over Kafka consumers, and offsets are committed by the member that
handled the records: at-least-once, as on Kafka.

When a child's stream ends (it exited, or was killed) its members leave their groups at once:
the partitions move to the other children, which read again every record the dead one had not
committed (a run it had claimed is fenced by its lease, as after an executor crash on Kafka).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import cast

from service.bus.interface import Bus, Subscription, TopicPartition
from service.bus.wire import Peer
from service.core.errors import BusError

Op = Callable[..., Awaitable[object]]


class BridgeServer:
    """Serves one child's calls on `bus`; `greeting` is what the child asks for first (its
    settings)."""

    def __init__(
        self, bus: Bus, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, greeting: object
    ) -> None:
        self._bus = bus
        self._greeting = greeting
        self._members: dict[int, Subscription] = {}
        self._peer = Peer(reader, writer, self._serve, self._cast)
        self._ops: dict[str, Op] = {
            "greeting": self._greet,
            "publish": bus.publish,
            "create_topics": bus.create_topics,
            "delete_topics": bus.delete_topics,
            "list_topics": bus.list_topics,
            "read_all": bus.read_all,
            "end_offsets": bus.end_offsets,
            "committed": bus.committed,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "fetch": self._fetch,
            "commit": self._commit,
        }

    async def run(self) -> None:
        """Serve until the child's stream ends, then take its members out of their groups."""
        try:
            await self._peer.run()
        finally:
            for member in list(self._members.values()):
                with contextlib.suppress(BusError):
                    await member.stop()
            self._members.clear()
            await self._peer.aclose()

    async def aclose(self) -> None:
        await self._peer.aclose()

    async def _serve(self, op: str, args: tuple[object, ...]) -> object:
        serve = self._ops.get(op)
        if serve is None:
            raise BusError(f"unknown bridge call {op!r}")
        return await serve(*args)

    def _cast(self, op: str, args: tuple[object, ...]) -> None:
        member_id, partitions = args
        member = self._members.get(cast("int", member_id))
        if member is None:
            return
        if op == "pause":
            member.pause(cast("frozenset[TopicPartition]", partitions))
        elif op == "resume":
            member.resume(cast("frozenset[TopicPartition]", partitions))

    async def _greet(self) -> object:
        return self._greeting

    async def _subscribe(self, member_id: int, group: str, topics: Sequence[str]) -> None:
        member = self._bus.subscribe(
            group,
            topics,
            on_assigned=self._callback("assigned", member_id),
            on_revoked=self._callback("revoked", member_id),
        )
        self._members[member_id] = member
        await member.start()

    def _callback(self, op: str, member_id: int) -> Callable[[frozenset[TopicPartition]], Awaitable[None]]:
        async def tell(partitions: frozenset[TopicPartition]) -> None:
            with contextlib.suppress(BusError):  # the child is gone: nothing of its to finish
                await self._peer.call(op, member_id, partitions)

        return tell

    async def _unsubscribe(self, member_id: int) -> None:
        member = self._members.pop(member_id, None)
        if member is not None:
            await member.stop()

    async def _fetch(self, member_id: int, timeout_s: float, max_records: int) -> object:
        return dict(await self._member(member_id).fetch(timeout_s, max_records))

    async def _commit(self, member_id: int, offsets: Mapping[TopicPartition, int]) -> None:
        await self._member(member_id).commit(offsets)

    def _member(self, member_id: int) -> Subscription:
        member = self._members.get(member_id)
        if member is None:
            raise BusError(f"no member {member_id} on this bridge")
        return member
