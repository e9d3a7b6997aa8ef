"""The one consumer loop: fetch, filter on `ce_type`, decode, handle, commit — on either bus.

Records of one partition are handled strictly in order by that partition's worker; partitions
are handled concurrently. A record's offset is committed only after its handler returned (the
handler commits its own database transaction first), in batches every `commit_interval` or
`commit_batch` records. Records whose `ce_type` the role does not handle are skipped and
committed without decoding. A record that cannot be decoded, or whose handler keeps failing, is
copied to `<topic>.dlq` with the reason in its headers and then committed, so one poison record
never blocks a partition. A handler that fails because a dependency is down (database, bus) is
retried until it succeeds or the runner stops: that is an outage, not a poison record.

A role with a capacity gate (the executor) is full: the runner pauses its partitions (it keeps
polling, so it stays in the group), and records already fetched wait in the runner, not in the
handler, so a revocation reaches them at once and the partition moves on without waiting for
room (records not handled are not committed: the next owner reads them).

Stopping (SIGTERM): stop fetching, let each worker finish the record in hand, commit, leave the
group. Records fetched but not handled are not committed; the next member receives them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from consumers.processing import Handler, RecordProcessor
from service.bus.interface import Bus, Message, Subscription, TopicPartition
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.errors import BusError, CommitFailed
from service.core.logging import get_logger
from service.runtime.pools import backoff_s

log = get_logger("consumers.runner")

GATE_POLL_S = 0.02  # while full, how often a partition's next record looks for room


class Gate(Protocol):
    """Capacity: while closed the runner pauses its partitions (and keeps polling the group)."""

    def is_open(self) -> bool: ...


class Beat(Protocol):
    def beat(self) -> None: ...


@dataclass(frozen=True)
class RunnerConfig:
    group: str
    topics: Sequence[str]
    types: frozenset[str]
    commit_interval_s: float = 0.1
    commit_batch: int = 100
    handler_attempts: int = 5
    retry_base_s: float = 0.2
    fetch_timeout_s: float = 0.2
    fetch_max_records: int = 500
    max_buffered_per_partition: int = 500
    # Records of one partition handled at once (1: strictly in order). A role whose effects do
    # not depend on order (the notifier) takes several, so its handler can batch their writes;
    # offsets still advance only past records that were handled.
    chunk: int = 1


@dataclass
class _Worker:
    tp: TopicPartition
    queue: deque[Message] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    done_offset: int | None = None  # next offset to commit
    committed_offset: int | None = None
    revoked: bool = False
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # set with `revoked`
    paused: bool = False


class ConsumerRunner:
    def __init__(
        self,
        bus: Bus,
        config: RunnerConfig,
        handler: Handler,
        *,
        gate: Gate | None = None,
        heartbeat: Beat | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._config = config
        self._handler = handler
        self._gate = gate
        self._heartbeat = heartbeat
        self._workers: dict[TopicPartition, _Worker] = {}
        self._stopping = asyncio.Event()
        self._started = asyncio.Event()
        self._gate_paused = False
        self._uncommitted = 0
        self._last_commit = clock.monotonic()
        self._subscription: Subscription | None = None
        self._records = RecordProcessor(bus, config, handler, self._stopping, clock)

    @property
    def started(self) -> asyncio.Event:
        """Set once the runner has joined its group."""
        return self._started

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this member holds right now."""
        return frozenset() if self._subscription is None else self._subscription.assignment()

    def request_stop(self) -> None:
        """Stop fetching; `run()` then drains, commits and leaves the group."""
        self._stopping.set()

    async def run(self) -> None:
        sub = await self._join()
        if sub is None:
            return  # asked to stop before the broker answered
        self._started.set()
        log.info("consumer_started", group=self._config.group, topics=list(self._config.topics))
        try:
            while not self._stopping.is_set():
                await self._poll_once(sub)
        finally:
            await self._drain_and_leave(sub)

    async def _join(self) -> Subscription | None:
        """Join the group, retrying with capped backoff while the broker is out of reach (it may
        restart while a role starts); None if asked to stop first."""
        attempt = 0
        while not self._stopping.is_set():
            sub = self._bus.subscribe(
                self._config.group,
                self._config.topics,
                on_assigned=self._on_assigned,
                on_revoked=self._on_revoked,
            )
            try:
                await sub.start()
            except BusError as exc:
                attempt += 1
                pause_s = backoff_s(attempt)  # capped below the liveness window
                log.warning(
                    "consumer_join_failed",
                    group=self._config.group,
                    error=str(exc),
                    attempt=attempt,
                    retry_in_s=pause_s,
                )
                if self._heartbeat is not None:
                    self._heartbeat.beat()
                await self._sleep(pause_s)
                continue
            self._subscription = sub
            return sub
        return None

    async def _poll_once(self, sub: Subscription) -> None:
        self._apply_gate(sub)
        try:
            batch = await sub.fetch(self._config.fetch_timeout_s, self._config.fetch_max_records)
        except BusError as exc:
            log.warning("consumer_fetch_failed", group=self._config.group, error=str(exc))
            await self._sleep(1.0)
            return
        assigned = sub.assignment()
        for tp, messages in batch.items():
            if tp in assigned and messages:
                self._enqueue(sub, tp, messages)
        await self._maybe_commit(sub)
        if self._heartbeat is not None:
            self._heartbeat.beat()

    def _apply_gate(self, sub: Subscription) -> None:
        if self._gate is None:
            return
        closed = not self._gate.is_open()
        if closed and not self._gate_paused:
            sub.pause(sub.assignment())
        elif not closed and self._gate_paused:
            sub.resume(frozenset(tp for tp in sub.assignment() if not self._worker(tp).paused))
        self._gate_paused = closed

    def _worker(self, tp: TopicPartition) -> _Worker:
        worker = self._workers.get(tp)
        if worker is None:
            worker = self._workers[tp] = _Worker(tp)
        return worker

    def _enqueue(self, sub: Subscription, tp: TopicPartition, messages: Sequence[Message]) -> None:
        worker = self._worker(tp)
        worker.queue.extend(messages)
        if len(worker.queue) >= self._config.max_buffered_per_partition and not worker.paused:
            worker.paused = True
            sub.pause(frozenset({tp}))
        if worker.task is None or worker.task.done():
            worker.task = asyncio.create_task(
                self._work(sub, worker), name=f"consume-{tp.topic}-{tp.partition}"
            )

    async def _work(self, sub: Subscription, worker: _Worker) -> None:
        while worker.queue and not worker.revoked and not self._stopping.is_set():
            if not await self._room(worker):
                return  # revoked or stopping while full: the records stay uncommitted for the next owner
            chunk = [worker.queue.popleft() for _ in range(min(self._config.chunk, len(worker.queue)))]
            handled = await self._process(chunk, worker)
            for message, done in zip(chunk, handled, strict=True):
                if not done:
                    return  # stopped while retrying: leave this record (and later ones) uncommitted
                worker.done_offset = message.offset + 1
                self._uncommitted += 1
            if worker.paused and len(worker.queue) <= self._config.max_buffered_per_partition // 2:
                worker.paused = False
                if not self._gate_paused:
                    sub.resume(frozenset({worker.tp}))

    async def _room(self, worker: _Worker) -> bool:
        """Hold a fetched record here while the gate is closed, not in the handler: a handler
        waiting for capacity cannot be told its partition was revoked, and a rebalance would
        wait for it (every member of the group idle until a conversation ends). False once the
        partition is revoked or the runner stops."""
        while self._gate is not None and not self._gate.is_open() and self._active(worker):
            with contextlib.suppress(TimeoutError):  # the gate has no event: look again soon
                await asyncio.wait_for(worker.gone.wait(), GATE_POLL_S)
        return self._active(worker)

    async def _process(self, chunk: list[Message], worker: _Worker) -> list[bool]:
        def wanted() -> bool:
            return self._active(worker)

        if len(chunk) == 1:  # the common, in-order case needs no extra task
            return [await self._records.process(chunk[0], wanted)]
        return list(await asyncio.gather(*(self._records.process(message, wanted) for message in chunk)))

    def _active(self, worker: _Worker) -> bool:
        return not self._stopping.is_set() and not worker.revoked

    async def _maybe_commit(self, sub: Subscription, force: bool = False) -> None:
        due = self._clock.monotonic() - self._last_commit >= self._config.commit_interval_s
        if not (force or due or self._uncommitted >= self._config.commit_batch):
            return
        await self._commit(sub, list(self._workers.values()))

    async def _commit(self, sub: Subscription, workers: list[_Worker]) -> None:
        offsets = {
            w.tp: w.done_offset
            for w in workers
            if w.done_offset is not None and w.done_offset != w.committed_offset
        }
        self._last_commit = self._clock.monotonic()
        if not offsets:
            return
        try:
            await sub.commit(offsets)
        except CommitFailed as exc:
            log.warning("commit_failed_after_rebalance", group=self._config.group, error=str(exc))
            return
        except BusError as exc:
            log.warning("commit_failed", group=self._config.group, error=str(exc))
            return
        for worker in workers:
            if worker.tp in offsets:
                worker.committed_offset = offsets[worker.tp]
        self._uncommitted = 0

    async def _on_assigned(self, partitions: frozenset[TopicPartition]) -> None:
        # Detail for debugging rebalances: `consumer_started` already says who joined, and on the
        # in-process bus (`agent-eval dev`) the one member always holds every partition.
        log.debug("partitions_assigned", group=self._config.group, partitions=_names(partitions))
        if self._gate_paused and self._subscription is not None:
            self._subscription.pause(partitions)

    async def _on_revoked(self, partitions: frozenset[TopicPartition]) -> None:
        """Finish the record in hand on each revoked partition and commit before they move."""
        log.debug("partitions_revoked", group=self._config.group, partitions=_names(partitions))
        workers = [self._workers.pop(tp) for tp in partitions if tp in self._workers]
        for worker in workers:
            worker.revoked = True
            worker.gone.set()
        await self._finish(workers)
        if self._subscription is not None:
            await self._commit(self._subscription, workers)

    async def _finish(self, workers: list[_Worker]) -> None:
        tasks = [w.task for w in workers if w.task is not None and not w.task.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain_and_leave(self, sub: Subscription) -> None:
        self._stopping.set()
        workers = list(self._workers.values())
        await self._finish(workers)
        await self._commit(sub, workers)
        await sub.stop()
        log.info("consumer_stopped", group=self._config.group)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def _names(partitions: frozenset[TopicPartition]) -> list[str]:
    """`topic[0-5,8]` per topic: a member usually holds runs of partitions."""
    numbers: dict[str, list[int]] = {}
    for tp in sorted(partitions):
        numbers.setdefault(tp.topic, []).append(tp.partition)
    return [f"{topic}[{_ranges(held)}]" for topic, held in numbers.items()]


def _ranges(numbers: list[int]) -> str:
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
