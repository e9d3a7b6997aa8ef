"""One behaviour, two buses: every test here runs on the in-process bus and on real Kafka.

The consumer runner is the only code above the bus, so these tests pin what roles can rely on:
per-key order, groups, commit-after-handle, DLQ for poison records, the capacity gate, and a
graceful stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

import pytest

from consumers.runner import ConsumerRunner, RunnerConfig
from schemas.events import Event, EventType
from service.bus.interface import Bus, TopicPartition, TopicSpec
from service.bus.kafka import KafkaBus
from service.bus.memory import InProcessBus
from service.bus.topics import dlq_name
from service.core.errors import DatabaseUnavailable
from service.core.ids import new_id
from tests.conftest import kafka_bootstrap_from_env as kafka_bootstrap
from tests.support.events import raw_record, record_for, run_request
from tests.support.waiting import eventually

HANDLED = frozenset({EventType.RUN_REQUESTED.value})


@pytest.fixture(params=["memory", "kafka"])
def bus_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def bus(bus_kind: str, topic_prefix: str) -> AsyncIterator[Bus]:
    if bus_kind == "memory":
        memory = InProcessBus()
        yield memory
        await memory.stop()
        return
    kafka = KafkaBus(kafka_bootstrap(), client_id="tests", session_timeout_ms=6000, heartbeat_interval_ms=500)
    await kafka.start()
    yield kafka
    await kafka.delete_topics([t for t in await kafka.list_topics() if t.startswith(topic_prefix)])
    await kafka.stop()


@pytest.fixture
def topic(topic_prefix: str) -> str:
    return f"{topic_prefix}events"


async def make_topic(bus: Bus, name: str, partitions: int = 1) -> None:
    await bus.create_topics([TopicSpec(name, partitions), TopicSpec(dlq_name(name), 1)])


@dataclass
class Collector:
    """A handler that records what it handled; `fail` decides per event whether to raise."""

    handled: list[Event] = field(default_factory=list)
    fail: Callable[[Event], Exception | None] = lambda _: None
    gate: asyncio.Event | None = None

    async def __call__(self, event: Event) -> None:
        if self.gate is not None:
            await self.gate.wait()
        error = self.fail(event)
        if error is not None:
            raise error
        self.handled.append(event)

    def run_ids(self) -> list[UUID]:
        return [e.run_id for e in self.handled if e.run_id is not None]


class Beats:
    def __init__(self) -> None:
        self.count = 0

    def beat(self) -> None:
        self.count += 1


class Gate:
    def __init__(self, open_: bool) -> None:
        self.open = open_

    def is_open(self) -> bool:
        return self.open


@dataclass
class Running:
    runner: ConsumerRunner
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.runner.request_stop()
        await asyncio.wait_for(self.task, 30)


async def start(
    bus: Bus, group: str, topic: str, handler: Callable[[Event], Awaitable[None]], **kwargs: object
) -> Running:
    config = RunnerConfig(group=group, topics=[topic], types=HANDLED, retry_base_s=0.01, handler_attempts=3)
    runner = ConsumerRunner(bus, config, handler, **kwargs)  # type: ignore[arg-type]  # gate/heartbeat
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.started.wait(), 30)
    return Running(runner, task)


async def committed_total(bus: Bus, group: str, topic: str) -> int:
    return sum((await bus.committed(group, topic)).values())


async def test_every_record_reaches_the_group_in_per_key_order(bus: Bus, topic: str) -> None:
    await make_topic(bus, topic, partitions=3)
    run_ids = [new_id() for _ in range(5)]
    events = [run_request(run_id) for _ in range(8) for run_id in run_ids]
    await bus.publish([record_for(e, topic) for e in events])
    collector = Collector()
    running = await start(bus, f"{topic}.g", topic, collector)
    await eventually(lambda: _len(collector), until=lambda n: n == len(events), what="all records")
    await running.stop()
    for run_id in run_ids:
        sent = [e.id for e in events if e.run_id == run_id]
        got = [e.id for e in collector.handled if e.run_id == run_id]
        assert got == sent
    assert await committed_total(bus, f"{topic}.g", topic) == len(events)


async def _len(collector: Collector) -> int:
    return len(collector.handled)


async def test_each_group_receives_every_record(bus: Bus, topic: str) -> None:
    await make_topic(bus, topic)
    events = [run_request() for _ in range(6)]
    await bus.publish([record_for(e, topic) for e in events])
    first, second = Collector(), Collector()
    runners = [await start(bus, f"{topic}.a", topic, first), await start(bus, f"{topic}.b", topic, second)]
    for collector in (first, second):
        await eventually(lambda c=collector: _len(c), until=lambda n: n == 6, what="both groups")  # type: ignore[misc]
    for running in runners:
        await running.stop()
    assert [e.id for e in first.handled] == [e.id for e in second.handled] == [e.id for e in events]


async def test_members_of_one_group_share_the_partitions(bus: Bus, topic: str) -> None:
    await make_topic(bus, topic, partitions=4)
    group = f"{topic}.shared"
    first, second = Collector(), Collector()
    members = [await start(bus, group, topic, first), await start(bus, group, topic, second)]

    async def split() -> tuple[int, int]:
        a, b = (m.runner.assignment() for m in members)
        return (len(a), len(b)) if not a & b else (0, 0)

    await eventually(split, until=lambda sizes: sizes == (2, 2), what="a 2+2 partition split")
    events = [run_request() for _ in range(40)]
    await bus.publish([record_for(e, topic) for e in events])
    await eventually(lambda: _sum(first, second), until=lambda n: n >= 40, what="all records")
    for member in members:
        await member.stop()
    handled = [e.id for e in first.handled + second.handled]
    assert sorted(handled) == sorted(e.id for e in events)  # each exactly once
    assert first.handled
    assert second.handled


async def _sum(*collectors: Collector) -> int:
    return sum(len(c.handled) for c in collectors)


async def test_a_restarted_member_resumes_after_the_last_commit(bus: Bus, topic: str) -> None:
    await make_topic(bus, topic)
    group = f"{topic}.resume"
    before, after = [run_request() for _ in range(5)], [run_request() for _ in range(5)]
    await bus.publish([record_for(e, topic) for e in before])
    first = Collector()
    running = await start(bus, group, topic, first)
    await eventually(lambda: _len(first), until=lambda n: n == 5, what="first batch")
    await running.stop()
    await bus.publish([record_for(e, topic) for e in after])
    second = Collector()
    running = await start(bus, group, topic, second)
    await eventually(lambda: _len(second), until=lambda n: n == 5, what="second batch")
    await running.stop()
    assert [e.id for e in second.handled] == [e.id for e in after]


async def test_a_new_group_starts_from_the_earliest_record(bus: Bus, topic: str) -> None:
    await make_topic(bus, topic)
    events = [run_request() for _ in range(3)]
    await bus.publish([record_for(e, topic) for e in events])
    collector = Collector()
    running = await start(bus, f"{topic}.late", topic, collector)
    await eventually(lambda: _len(collector), until=lambda n: n == 3, what="old records")
    await running.stop()


async def test_a_failing_handler_is_retried_and_order_is_kept(bus: Bus, topic: str) -> None:
    await make_topic(bus, topic)
    events = [run_request() for _ in range(3)]
    failures = {events[0].id: 2}

    def fail(event: Event) -> Exception | None:
        if failures.get(event.id, 0) > 0:
            failures[event.id] -= 1
            return RuntimeError("flaky")
        return None

    collector = Collector(fail=fail)
    await bus.publish([record_for(e, topic) for e in events])
    running = await start(bus, f"{topic}.g", topic, collector)
    await eventually(lambda: _len(collector), until=lambda n: n == 3, what="records after retries")
    await running.stop()
    assert [e.id for e in collector.handled] == [e.id for e in events]
    assert await bus.read_all(dlq_name(topic)) == []


async def test_transient_failures_are_retried_past_the_attempt_limit(bus: Bus, topic: str) -> None:
    await make_topic(bus, topic)
    event = run_request()
    remaining = [6]  # more than handler_attempts=3: an outage is not a poison record

    def fail(_: Event) -> Exception | None:
        if remaining[0] > 0:
            remaining[0] -= 1
            return DatabaseUnavailable("connection refused")
        return None

    collector = Collector(fail=fail)
    await bus.publish([record_for(event, topic)])
    running = await start(bus, f"{topic}.g", topic, collector)
    await eventually(lambda: _len(collector), until=lambda n: n == 1, what="the record after the outage")
    await running.stop()
    assert await bus.read_all(dlq_name(topic)) == []


async def test_poison_records_go_to_the_dlq_and_consumption_continues(bus: Bus, topic: str) -> None:
    await make_topic(bus, topic)
    good = run_request()
    hopeless = run_request()
    collector = Collector(fail=lambda e: ValueError("cannot handle") if e.id == hopeless.id else None)
    await bus.publish(
        [
            raw_record(topic, b"{not json", ce_type=EventType.RUN_REQUESTED.value),
            raw_record(topic, b'{"id": 1}', ce_type=None),
            record_for(hopeless, topic),
            record_for(good, topic),
        ]
    )
    group = f"{topic}.g"
    running = await start(bus, group, topic, collector)
    await eventually(lambda: _len(collector), until=lambda n: n == 1, what="the good record")
    await eventually(lambda: committed_total(bus, group, topic), until=lambda n: n == 4, what="commit")
    await running.stop()
    assert [e.id for e in collector.handled] == [good.id]
    dead = await bus.read_all(dlq_name(topic))
    reasons = [(m.header("dlq_reason"), m.header("dlq_source_offset")) for m in dead]
    assert reasons == [(b"undecodable", b"0"), (b"undecodable", b"1"), (b"handler_failed", b"2")]
    assert dead[2].value == record_for(hopeless, topic).value
    assert dead[2].header("dlq_error") == b"ValueError: cannot handle"


async def test_types_the_role_does_not_handle_are_skipped_without_decoding(bus: Bus, topic: str) -> None:
    await make_topic(bus, topic)
    event = run_request()
    await bus.publish(
        [raw_record(topic, b"not even json", ce_type="agent_eval.run.turn"), record_for(event, topic)]
    )
    collector = Collector()
    group = f"{topic}.g"
    running = await start(bus, group, topic, collector)
    await eventually(lambda: committed_total(bus, group, topic), until=lambda n: n == 2, what="commit")
    await running.stop()
    assert [e.id for e in collector.handled] == [event.id]
    assert await bus.read_all(dlq_name(topic)) == []


async def test_a_closed_gate_pauses_consumption_while_polling_goes_on(bus: Bus, topic: str) -> None:
    await make_topic(bus, topic)
    gate, beats, collector = Gate(open_=False), Beats(), Collector()
    running = await start(bus, f"{topic}.g", topic, collector, gate=gate, heartbeat=beats)
    await eventually(lambda: _assigned(running), what="an assignment")
    await bus.publish([record_for(run_request(), topic) for _ in range(3)])
    polls = beats.count
    await eventually(lambda: _count(beats), until=lambda n: n >= polls + 15, what="polls while paused")
    assert collector.handled == []
    gate.open = True
    await eventually(lambda: _len(collector), until=lambda n: n == 3, what="records after opening")
    await running.stop()


async def _assigned(running: Running) -> frozenset[TopicPartition]:
    return running.runner.assignment()


async def _count(beats: Beats) -> int:
    return beats.count


async def test_stop_finishes_the_record_in_hand_commits_it_and_leaves_the_rest(bus: Bus, topic: str) -> None:
    await make_topic(bus, topic)
    events = [run_request() for _ in range(3)]
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(event: Event) -> None:
        entered.set()
        await release.wait()
        handled.append(event)

    handled: list[Event] = []
    await bus.publish([record_for(e, topic) for e in events])
    group = f"{topic}.g"
    running = await start(bus, group, topic, slow)
    await asyncio.wait_for(entered.wait(), 30)
    running.runner.request_stop()
    release.set()
    await asyncio.wait_for(running.task, 30)
    assert [e.id for e in handled] == [events[0].id]
    assert await committed_total(bus, group, topic) == 1
    rest = Collector()
    again = await start(bus, group, topic, rest)
    await eventually(lambda: _len(rest), until=lambda n: n == 2, what="the unhandled records")
    await again.stop()
    assert [e.id for e in rest.handled] == [e.id for e in events[1:]]


async def test_publish_says_where_each_record_went_and_the_group_commits_past_it_once_handled(
    bus: Bus, topic: str
) -> None:
    await make_topic(bus, topic, partitions=3)
    events = [run_request() for _ in range(9)]
    published = await bus.publish([record_for(e, topic) for e in events])
    stored = {m.value: (m.partition, m.offset) for m in await bus.read_all(topic)}
    assert [(p.partition, p.offset) for p in published] == [
        stored[record_for(e, topic).value] for e in events
    ]
    group = f"{topic}.positions"
    assert await bus.committed(group, topic) == {}  # a group that never committed: every record waits
    release = asyncio.Event()
    collector = Collector(gate=release)
    running = await start(bus, group, topic, collector)
    await asyncio.sleep(0.5)  # records fetched and in hand are not read past: nothing is committed
    committed = await bus.committed(group, topic)
    assert all(p.offset >= committed.get(TopicPartition(topic, p.partition), 0) for p in published)
    release.set()
    await eventually(lambda: committed_total(bus, group, topic), until=lambda n: n == 9, what="commits")
    await running.stop()
    committed = await bus.committed(group, topic)
    assert all(p.offset < committed[TopicPartition(topic, p.partition)] for p in published)


async def test_a_full_member_gives_up_a_partition_at_once_and_its_records_move_on(
    bus: Bus, topic: str
) -> None:
    await make_topic(bus, topic, partitions=2)
    group = f"{topic}.full"
    gate, room = Gate(open_=True), asyncio.Event()
    room.set()
    first: list[Event] = []

    async def fill_up(event: Event) -> None:  # like the executor: waits for room, takes the last slot
        await room.wait()
        first.append(event)
        room.clear()
        gate.open = False

    events = [run_request() for _ in range(12)]
    published = await bus.publish([record_for(e, topic) for e in events])
    full = await start(bus, group, topic, fill_up, gate=gate)
    await eventually(lambda: _handled(first), until=lambda n: n == 1, what="the member to fill up")
    second = Collector()
    other = await start(bus, group, topic, second)  # the rebalance must not wait for room on the full one
    await eventually(lambda: _split(full, other), what="one partition each")
    (moved,) = other.runner.assignment()
    expected = [e.id for e, p in zip(events, published, strict=True) if p.partition == moved.partition]
    expected = [i for i in expected if i != first[0].id]
    await eventually(lambda: _len(second), until=lambda n: n == len(expected), what="the records to move on")
    assert [e.id for e in second.handled] == expected
    for running in (other, full):
        await running.stop()


async def _handled(events: list[Event]) -> int:
    return len(events)


async def _split(*members: Running) -> bool:
    return all(len(m.runner.assignment()) == 1 for m in members)
