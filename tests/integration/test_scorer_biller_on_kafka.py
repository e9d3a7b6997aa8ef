"""The scorer and biller roles as Kafka consumers, fed by the relay: a completed run becomes a
scored, billed, done run; redelivered events change nothing and emit nothing."""

from __future__ import annotations

from uuid import UUID

import pytest

from consumers.registry import ROLES
from schemas.events import EventType, Topic
from service.bus.interface import OutgoingRecord
from service.bus.kafka import KafkaBus
from service.bus.topics import topic_name
from service.core.settings import ProviderConfig, Settings
from service.db import companies, outbox
from service.db.postgres import Pool, connection, transaction
from tests.support.factories import make_company, make_finished_run
from tests.support.fake_llm import FakeLLM, verdict
from tests.support.pipeline import pipeline
from tests.support.scenarios import read_run
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka


async def _events(pool: Pool, run_id: UUID) -> list[str]:
    async with connection(pool) as conn:
        rows = await conn.fetch("SELECT type FROM outbox WHERE run_id = $1 ORDER BY sequence", run_id)
    return [r["type"].removeprefix("agent_eval.run.") for r in rows]


async def _committed(kafka: KafkaBus, settings: Settings, role: str) -> int:
    group = ROLES[role].group(settings.topic_prefix)
    return sum((await kafka.committed(group, topic_name(settings.topic_prefix, Topic.RUN_EVENTS))).values())


async def test_a_completed_run_flows_to_done_and_redelivery_is_harmless(
    pool: Pool, kafka: KafkaBus, settings: Settings, llm: FakeLLM
) -> None:
    settings = settings.model_copy(
        update={
            "providers": {"fake": ProviderConfig(base_url=llm.base_url, max_retries=0)},
            "judge_model": "fake:j",
        }
    )
    company = await make_company(pool, balance_cents=500)
    criteria = [
        {"type": "must_say", "pattern": "hello"},
        {"type": "custom_llm_judge", "rubric": "Be kind."},
    ]
    run = await make_finished_run(
        pool,
        company.id,
        criteria=criteria,
        turns=[("persona", "Hi", 1_000_000), ("agent", "Hello!", 2_000_000)],
    )
    llm.script(verdict(True))
    async with transaction(pool) as conn:
        await outbox.append_event(conn, run.id, EventType.RUN_COMPLETED, run.summary())

    async with pipeline(settings, pool, kafka, roles=("scorer", "biller")):
        done = await eventually(
            lambda: read_run(pool, run.id),
            until=lambda r: r.queue_status == "done",
            what="the run to be done",
        )
        assert await _events(pool, run.id) == ["completed", "scored", "billed", "done"]
        assert (done.score, done.pass_fail, done.total_cost_cents) == (100.0, True, 4)

        # Redeliver everything the run ever published (as after a consumer crash before commit).
        records = await kafka.read_all(topic_name(settings.topic_prefix, Topic.RUN_EVENTS))
        handled = {name: await _committed(kafka, settings, name) for name in ("scorer", "biller")}
        await kafka.publish([OutgoingRecord(r.topic, r.key, r.value, r.headers) for r in records])
        for name, before in handled.items():

            async def caught_up(role: str = name, target: int = before + len(records)) -> bool:
                return await _committed(kafka, settings, role) >= target

            await eventually(caught_up, what=f"the {name} to consume the redelivery")
    assert await read_run(pool, run.id) == done
    assert await _events(pool, run.id) == ["completed", "scored", "billed", "done"]
    assert len(llm.requests) == 1  # the judge was not asked again
    async with connection(pool) as conn:
        assert (await companies.get_company(conn, company.id)).balance_cents == 496
