"""SIGTERM on a consumer: stop fetching, finish, commit, leave the group — on real Kafka."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from consumers.runner import ConsumerRunner, RunnerConfig
from schemas.events import Event, EventType
from service.bus.interface import TopicSpec
from service.bus.kafka import KafkaBus
from tests.support.events import record_for, run_request
from tests.support.processes import spawned
from tests.support.waiting import eventually, eventually_sync

pytestmark = pytest.mark.kafka


async def test_sigterm_commits_what_was_handled_and_hands_the_rest_over_at_once(
    kafka: KafkaBus, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topic, group = f"{topic_prefix}work", f"{topic_prefix}workers"
    await kafka.create_topics([TopicSpec(topic, 1), TopicSpec(f"{topic}.dlq", 1)])
    first_batch = [run_request() for _ in range(10)]
    await kafka.publish([record_for(e, topic) for e in first_batch])
    out = tmp_path / "handled.txt"
    argv = [sys.executable, "-m", "tests.support.consumer_process", kafka_bootstrap, group, topic, str(out)]
    with spawned(argv, {}) as child:
        eventually_sync(lambda: child.find("ready"), what=f"the child to join:\n{child.output()}")
        eventually_sync(lambda: out.exists() and len(out.read_text().split()) == 10, what="the first batch")

        # A second member joins; the child is the one holding the only partition.
        handled: list[Event] = []

        async def collect(event: Event) -> None:
            handled.append(event)

        config = RunnerConfig(group=group, topics=[topic], types=frozenset({EventType.RUN_REQUESTED.value}))
        other = ConsumerRunner(kafka, config, collect)
        task = asyncio.create_task(other.run())
        await asyncio.wait_for(other.started.wait(), 30)

        child.signal(signal.SIGTERM)
        assert await asyncio.to_thread(child.wait, 30) == 0
        assert child.find("stopped") is not None

        # The session timeout is 30 s: only a LeaveGroup explains a handover well before that.
        await eventually(lambda: _assigned(other), timeout_s=15, what="the partition to move at once")
        assert sum((await kafka.committed(group, topic)).values()) == 10

        second_batch = [run_request() for _ in range(5)]
        await kafka.publish([record_for(e, topic) for e in second_batch])
        await eventually(lambda: _count(handled), until=lambda n: n == 5, what="the second batch")
        other.request_stop()
        await task
    assert [e.id for e in handled] == [e.id for e in second_batch]  # nothing handled twice
    assert [line for line in out.read_text().split()] == [str(e.id) for e in first_batch]


async def _assigned(runner: ConsumerRunner) -> bool:
    return bool(runner.assignment())


async def _count(items: list[Event]) -> int:
    return len(items)
