"""Outbox → relay → real Kafka → a consumer group: order, CloudEvents headers, failover, redelivery."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import aiohttp
import pytest

from consumers.relay import Relay
from consumers.runner import ConsumerRunner, RunnerConfig
from schemas.events import RUN_EVENTS, Event, EventType, Topic
from service.bus.interface import Bus, Message, OutgoingRecord
from service.bus.kafka import KafkaBus
from service.bus.topics import topic_name, topic_specs
from service.core.settings import Settings
from service.db import outbox, publishing
from service.db import runs as runs_db
from service.db.postgres import Pool, connection, transaction
from service.local.pgserver import free_port
from tests.support.factories import make_company, make_run
from tests.support.processes import AGENT_EVAL, Spawned, spawned
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka


@dataclass
class Received:
    events: list[Event] = field(default_factory=list)

    async def __call__(self, event: Event) -> None:
        self.events.append(event)

    def ids(self) -> set[UUID]:
        return {e.id for e in self.events}

    def sequences(self, run_id: UUID) -> list[int | None]:
        return [e.sequence for e in self.events if e.run_id == run_id]


@pytest.fixture
async def topics(kafka: KafkaBus, settings: Settings) -> None:
    await kafka.create_topics(topic_specs(settings.topic_prefix, 3, 1))


@contextlib.asynccontextmanager
async def consuming(bus: Bus, settings: Settings, received: Received) -> AsyncIterator[None]:
    config = RunnerConfig(
        group=f"{settings.topic_prefix}observer",
        topics=[topic_name(settings.topic_prefix, Topic.RUN_EVENTS)],
        types=frozenset(t.value for t in RUN_EVENTS),
    )
    runner = ConsumerRunner(bus, config, received)
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        runner.request_stop()
        await task


@contextlib.asynccontextmanager
async def relaying(relay: Relay) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await task


async def append_events(pool: Pool, run_id: UUID, count: int) -> list[Event]:
    events = []
    for _ in range(count):
        async with transaction(pool) as conn:
            summary = (await runs_db.get_run(conn, run_id)).summary()
            events.append(await outbox.append_event(conn, run_id, EventType.RUN_STARTED, summary))
    return events


async def unsent(pool: Pool) -> int:
    async with connection(pool) as conn:
        count, _ = await publishing.unsent_stats(conn)
    return count


async def test_every_event_arrives_once_in_per_run_order_with_cloudevents_headers(
    pool: Pool, kafka: KafkaBus, settings: Settings, topics: None
) -> None:
    company = await make_company(pool)
    runs = [await make_run(pool, company.id) for _ in range(4)]
    received = Received()
    async with consuming(kafka, settings, received), relaying(Relay(settings, kafka)):
        for _ in range(5):
            for run in runs:
                await append_events(pool, run.id, 1)
        await eventually(lambda: _count(received), until=lambda n: n == 20, what="20 events")
    for run in runs:
        assert received.sequences(run.id) == [1, 2, 3, 4, 5]
    assert len(received.ids()) == 20
    assert await unsent(pool) == 0
    records = await kafka.read_all(topic_name(settings.topic_prefix, Topic.RUN_EVENTS))
    first = records[0]
    headers = dict(first.headers)
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_source"] == b"/agent-eval"
    assert headers["ce_type"] == b"agent_eval.run.started"
    assert headers["content-type"] == b"application/json"
    assert headers["ce_subject"] == first.key
    assert headers["ce_sequence"].isdigit()
    assert headers["traceparent"].startswith(b"00-")
    assert {UUID(h) for h in (dict(r.headers)["ce_id"].decode() for r in records)} == received.ids()


async def _count(received: Received) -> int:
    return len(received.events)


class DiesAfterPublish:
    """A bus that lets one publish through and then kills its relay before it can mark the rows."""

    def __init__(self, inner: Bus, victim: asyncio.Event) -> None:
        self._inner = inner
        self._victim = victim
        self.published: list[OutgoingRecord] = []

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        await self._inner.publish(records)
        self.published.extend(records)
        self._victim.set()
        await asyncio.Event().wait()  # never returns: the relay is cancelled here, before marking

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


async def test_a_relay_killed_between_publish_and_mark_loses_nothing_and_repeats(
    pool: Pool, kafka: KafkaBus, settings: Settings, topics: None
) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    sent = await append_events(pool, run.id, 3)
    killed = asyncio.Event()
    doomed_bus = DiesAfterPublish(kafka, killed)
    relay = Relay(settings, doomed_bus, name="doomed")  # type: ignore[arg-type]  # forwards the rest of Bus
    doomed = asyncio.create_task(relay.run(asyncio.Event()))
    await asyncio.wait_for(killed.wait(), 30)
    doomed.cancel()  # the process dies: its connection closes, its lock is released, nothing marked
    with contextlib.suppress(asyncio.CancelledError):
        await doomed
    assert await unsent(pool) == 3
    received = Received()
    async with consuming(kafka, settings, received), relaying(Relay(settings, kafka, name="successor")):
        await eventually(lambda: _count(received), until=lambda n: n == 6, what="3 events twice")
        assert await eventually(lambda: unsent(pool), until=lambda n: n == 0, what="rows marked") == 0
    assert [e.id for e in received.events] == [e.id for e in sent] * 2  # duplicates, in order, none lost
    assert received.sequences(run.id) == [1, 2, 3, 1, 2, 3]


async def test_only_one_relay_is_active_and_a_standby_takes_over(
    pool: Pool, kafka: KafkaBus, settings: Settings, topics: None
) -> None:
    first, second = Relay(settings, kafka, name="first"), Relay(settings, kafka, name="second")
    stop_first = asyncio.Event()
    first_task = asyncio.create_task(first.run(stop_first))
    await asyncio.wait_for(first.active.wait(), 30)
    async with relaying(second):
        polls = second.heartbeat.beats
        await eventually(lambda: _beats(second), until=lambda n: n >= polls + 3, what="the standby to poll")
        assert not second.active.is_set()
        stop_first.set()  # the active relay goes away; its connection closes and frees the lock
        await first_task
        await asyncio.wait_for(second.active.wait(), 30)
        company = await make_company(pool)
        run = await make_run(pool, company.id)
        await append_events(pool, run.id, 2)
        await eventually(lambda: unsent(pool), until=lambda n: n == 0, what="the standby to publish")


async def _beats(relay: Relay) -> int:
    return relay.heartbeat.beats


async def _metric(port: int) -> float | None:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            text = await resp.text()
    except aiohttp.ClientError:
        return None
    for line in text.splitlines():
        if line.startswith("agent_eval_relay_active "):
            return float(line.split()[1])
    return None


async def test_kill_9_of_the_active_relay_process_hands_over_to_the_standby(
    pool: Pool, kafka: KafkaBus, settings: Settings, topics: None, database_url: str
) -> None:
    ports = [free_port(), free_port()]

    def env(port: int) -> dict[str, str]:
        return {
            "AGENT_EVAL_DATABASE_URL": database_url,
            "AGENT_EVAL_TOPIC_PREFIX": settings.topic_prefix,
            "AGENT_EVAL_HEALTH_PORT": str(port),
            "AGENT_EVAL_RELAY_LOCK_POLL_S": "0.2",
            "AGENT_EVAL_LOG_FORMAT": "json",
        }

    company = await make_company(pool)
    run = await make_run(pool, company.id)
    with (
        spawned([AGENT_EVAL, "relay"], env(ports[0])) as a,
        spawned([AGENT_EVAL, "relay"], env(ports[1])) as b,
    ):
        procs: dict[int, Spawned] = {ports[0]: a, ports[1]: b}

        async def active_port() -> int | None:
            states = {port: await _metric(port) for port in procs}
            actives = [port for port, value in states.items() if value == 1.0]
            ready = all(value is not None for value in states.values())
            return actives[0] if ready and len(actives) == 1 else None

        leader = await eventually(active_port, what="exactly one active relay")
        assert leader is not None
        await append_events(pool, run.id, 2)
        await eventually(lambda: unsent(pool), until=lambda n: n == 0, what="the leader to publish")
        procs[leader].signal(signal.SIGKILL)
        procs[leader].wait()
        standby = next(port for port in procs if port != leader)
        await eventually(lambda: _metric(standby), until=lambda v: v == 1.0, what="the standby to lead")
        await append_events(pool, run.id, 2)
        await eventually(lambda: unsent(pool), until=lambda n: n == 0, what="the standby to publish")
    records = await kafka.read_all(topic_name(settings.topic_prefix, Topic.RUN_EVENTS))
    assert sorted({int(dict(r.headers)["ce_sequence"]) for r in records}) == [1, 2, 3, 4]


async def test_relay_records_use_the_run_id_as_key(
    pool: Pool, kafka: KafkaBus, settings: Settings, topics: None
) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    async with transaction(pool) as conn:
        await outbox.append_run_request(conn, run.id, company.id)
    async with relaying(Relay(settings, kafka)):
        await eventually(lambda: unsent(pool), until=lambda n: n == 0, what="publish")
    (record,) = await kafka.read_all(topic_name(settings.topic_prefix, Topic.RUN_REQUESTS))
    assert isinstance(record, Message)
    assert record.key == str(run.id).encode()
    assert dict(record.headers)["ce_type"] == b"agent_eval.run.requested"
    assert "ce_sequence" not in dict(record.headers)
