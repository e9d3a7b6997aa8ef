"""Re-dispatch tells a request waiting in the topic from a lost one (issue 15), on real Kafka and
PostgreSQL with the pipeline in this process: many runs queued behind one small, slow executor
get exactly one run request each, however often the sweep looks at them; a request consumed
without a claim, one marked sent but never published, and one never written are each
re-dispatched and their runs complete; a broker that cannot say where the executors are makes
the sweep neither re-dispatch nor wait."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from uuid import UUID

import pytest
from prometheus_client import REGISTRY

from consumers.redispatch import ExecutorOffsets, sweep_stale_pending
from schemas.events import Topic
from service.bus.interface import TopicPartition
from service.bus.kafka import KafkaBus
from service.bus.topics import topic_name
from service.core.errors import BusError
from service.core.settings import Settings
from service.db.postgres import Pool, connection
from tests.support.factories import make_company
from tests.support.pipeline import pipeline
from tests.support.scenarios import finished, make_case, read_run, trigger
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka

QUEUED = 300  # runs offered at once to an executor that plays EXECUTOR_SLOTS at a time
EXECUTOR_SLOTS = 4


def _queueing(settings: Settings) -> Settings:
    """Settings under which runs wait far longer than `dispatch_stale_s`, swept every 0.2 s."""
    return settings.model_copy(
        update={
            "topic_partitions": 3,
            "executor_concurrency": EXECUTOR_SLOTS,
            "scripted_latency_s": 0.02,
            "dispatch_stale_s": 1.0,
            "maintenance_interval_s": 0.2,
            "max_inflight_runs_per_company": 10_000,
        }
    )


def _redispatched(reason: str) -> float:
    return REGISTRY.get_sample_value("agent_eval_runs_redispatched_total", {"reason": reason}) or 0.0


async def _queue_age() -> float:
    return REGISTRY.get_sample_value("agent_eval_queue_oldest_pending_age_seconds") or 0.0


async def _requests_per_run(pool: Pool, run_ids: list[UUID]) -> dict[UUID, int]:
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT run_id, count(*) AS n FROM outbox WHERE run_id = ANY($1::uuid[])"
            " AND type = 'agent_eval.run.requested' GROUP BY run_id",
            run_ids,
        )
    return {r["run_id"]: r["n"] for r in rows}


async def _looked_at_while_waiting(pool: Pool, run_ids: list[UUID]) -> int:
    """Runs the stale sweep found waiting in the topic (it counts them as dispatched again)."""
    async with connection(pool) as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM eval_runs WHERE id = ANY($1::uuid[]) AND dispatched_at > released_at",
            run_ids,
        )
    return int(count)


async def test_runs_queued_behind_a_saturated_executor_get_one_request_each(
    pool: Pool, kafka: KafkaBus, settings: Settings
) -> None:
    settings = _queueing(settings)
    company = await make_company(pool, balance_cents=1_000_000)
    case_id = await make_case(pool, company.id)
    run_ids = [await trigger(pool, settings, company.id, case_id) for _ in range(QUEUED)]
    before = _redispatched("stale_pending")
    async with pipeline(settings, pool, kafka, maintenance=True):
        await eventually(_queue_age, until=lambda age: age > 3 * settings.dispatch_stale_s, what="a queue")
        done = [await finished(pool, run_id, timeout_s=180) for run_id in run_ids]
    assert {run.status for run in done} == {"completed"}
    assert set((await _requests_per_run(pool, run_ids)).values()) == {1}
    assert _redispatched("stale_pending") == before
    assert await _looked_at_while_waiting(pool, run_ids) > QUEUED // 2  # the sweep saw them, and waited


async def _consume_without_claiming(kafka: KafkaBus, settings: Settings, records: int) -> None:
    """A rogue member of the executors' group: reads `records` run requests and commits past
    them, claiming nothing (as an executor that acknowledged and then lost them would)."""
    sub = kafka.subscribe(
        ExecutorOffsets.of(kafka, settings).group,
        [topic_name(settings.topic_prefix, Topic.RUN_REQUESTS)],
        on_assigned=_nothing,
        on_revoked=_nothing,
    )
    await sub.start()
    read_to: dict[TopicPartition, int] = {}
    read = 0
    try:
        while read < records:
            for tp, messages in (await sub.fetch(0.5, 100)).items():
                read_to[tp] = messages[-1].offset + 1
                read += len(messages)
        await sub.commit(read_to)
    finally:
        await sub.stop()


async def _nothing(_: frozenset[TopicPartition]) -> None:
    return None


async def test_a_request_read_without_a_claim_is_dispatched_again_and_the_run_completes(
    pool: Pool, kafka: KafkaBus, settings: Settings
) -> None:
    settings = _queueing(settings).model_copy(update={"topic_partitions": 1})
    company = await make_company(pool, balance_cents=10_000)
    run_id = await trigger(pool, settings, company.id, await make_case(pool, company.id))
    async with pipeline(settings, pool, kafka, roles=()):  # the relay publishes the request
        await eventually(lambda: _sent(pool, run_id), what="the request published")
    await _consume_without_claiming(kafka, settings, records=1)
    before = _redispatched("stale_pending")
    async with pipeline(settings, pool, kafka, maintenance=True):
        run = await finished(pool, run_id)
    assert (run.status, run.attempt) == ("completed", 1)
    assert (await _requests_per_run(pool, [run_id]))[run_id] == 2
    assert _redispatched("stale_pending") == before + 1


async def _sent(pool: Pool, run_id: UUID) -> bool:
    async with connection(pool) as conn:
        return bool(
            await conn.fetchval(
                "SELECT bool_and(p.id IS NULL) FROM outbox AS o LEFT JOIN outbox_pending AS p"
                " ON p.id = o.id WHERE o.run_id = $1 AND o.type = 'agent_eval.run.requested'",
                run_id,
            )
        )


async def test_requests_marked_sent_but_never_published_or_never_written_are_dispatched_again(
    pool: Pool, kafka: KafkaBus, settings: Settings
) -> None:
    settings = _queueing(settings)
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(pool, company.id)
    unpublished, unwritten = [await trigger(pool, settings, company.id, case_id) for _ in range(2)]
    async with connection(pool) as conn:  # as a relay that marked rows it never got out would
        await conn.execute(
            "DELETE FROM outbox_pending WHERE id IN"
            " (SELECT id FROM outbox WHERE run_id = $1 AND type = 'agent_eval.run.requested')",
            unpublished,
        )
        await conn.execute(
            "DELETE FROM outbox WHERE run_id = $1 AND type = 'agent_eval.run.requested'", unwritten
        )
    async with pipeline(settings, pool, kafka, maintenance=True):
        done = [await finished(pool, run_id) for run_id in (unpublished, unwritten)]
    assert [run.status for run in done] == ["completed", "completed"]
    assert await _requests_per_run(pool, [unpublished, unwritten]) == {unpublished: 2, unwritten: 1}


class Unanswering:
    """A bus whose broker does not answer offset requests (slow, or failing at once)."""

    def __init__(self, *, fail: bool) -> None:
        self._fail = fail

    async def committed(self, group: str, topic: str) -> Mapping[TopicPartition, int]:
        if self._fail:
            raise BusError("broker unreachable")
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.mark.parametrize("fail", [True, False], ids=["failing", "hanging"])
async def test_a_broker_that_cannot_say_where_the_executors_are_causes_no_redispatch_and_no_wait(
    pool: Pool, kafka: KafkaBus, settings: Settings, fail: bool
) -> None:
    settings = _queueing(settings)
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(pool, company.id)
    published, unwritten = [await trigger(pool, settings, company.id, case_id) for _ in range(2)]
    async with pipeline(settings, pool, kafka, roles=()):
        await eventually(lambda: _sent(pool, published), what="the request published")
    async with connection(pool) as conn:
        await conn.execute(
            "DELETE FROM outbox WHERE run_id = $1 AND type = 'agent_eval.run.requested'", unwritten
        )
        await conn.execute("UPDATE eval_runs SET dispatched_at = now() - interval '1 minute'")
    executors = ExecutorOffsets(Unanswering(fail=fail), "g", "t", timeout_s=0.3)  # type: ignore[arg-type]
    redispatched = await asyncio.wait_for(sweep_stale_pending(pool, 1.0, executors), 5)
    assert redispatched == 1  # the run that never had a request; the published one waits
    assert await _requests_per_run(pool, [published, unwritten]) == {published: 1, unwritten: 1}
    assert (await read_run(pool, published)).dispatched_at is not None
    assert await sweep_stale_pending(pool, 1.0, executors) == 0  # looked at again only later
