"""The executor's claim and lease (DESIGN.md §3), against real PostgreSQL: one claim per run,
fenced writes, the attempt cap, lease renewal, hand-back on shutdown and resumption from the
persisted transcript."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest

from consumers.executor.conversation import Engine
from consumers.executor.drafts import Draft
from consumers.executor.worker import Executor
from consumers.maintenance import maintenance_jobs
from service.core.errors import LeaseLost
from service.core.settings import Settings
from service.db.claims import Lease
from service.db.postgres import Pool, connection, transaction
from service.domain.lifecycle import Ending
from tests.support.executor_runs import make_engine, new_run, run_request
from tests.support.scenarios import event_types, read_run, turn_rows
from tests.support.waiting import eventually


async def slow_executor_on_a_new_run(
    pool: Pool, settings: Settings, **slower: float
) -> tuple[UUID, Executor, Engine]:
    """A new run handed to an executor "first" whose settings are updated with `slower`; the run,
    the executor and its engine (whose tools the caller closes)."""
    slow = settings.model_copy(update=slower)
    slow_engine = make_engine(slow, pool)
    run_id = await new_run(pool, settings)
    executor = Executor(pool, slow, slow_engine, name="first")
    await executor.handle(await run_request(pool, run_id))
    return run_id, executor, slow_engine


async def expire_lease(pool: Pool, run_id: UUID) -> None:
    async with transaction(pool) as conn:
        await conn.execute(
            "UPDATE eval_runs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", run_id
        )


async def test_a_run_is_claimed_once_however_often_it_is_requested(
    pool: Pool, settings: Settings, engine: Engine
) -> None:
    run_id = await new_run(pool, settings)
    first = await engine.writer.claim(run_id, "a")
    second = await engine.writer.claim(run_id, "b")
    assert first is not None
    assert (first.status, first.queue_status, first.attempt) == (
        "running",
        "claimed",
        1,
    )
    assert second is None
    assert (await event_types(pool, run_id)).count("started") == 1


async def test_an_executor_that_lost_its_lease_writes_nothing(
    pool: Pool, settings: Settings, engine: Engine
) -> None:
    run_id = await new_run(pool, settings)
    first = await engine.writer.claim(run_id, "a")
    assert first is not None
    await expire_lease(pool, run_id)
    second = await engine.writer.claim(run_id, "b")
    assert second is not None
    assert second.attempt == 2
    stale = Lease(run_id, "a", 1)
    with pytest.raises(LeaseLost):
        await engine.writer.persist(stale, 1, [Draft("persona", text="late")], None, 10)
    with pytest.raises(LeaseLost):
        await engine.writer.end(stale, Ending("max_turns"), 10)
    assert await turn_rows(pool, run_id) == []
    assert (await read_run(pool, run_id)).status == "running"


async def test_a_run_whose_executors_keep_vanishing_is_not_claimed_again_and_fails_executor_lost(
    pool: Pool, settings: Settings, engine: Engine
) -> None:
    run_id = await new_run(pool, settings)
    for executor in ("a", "b", "c"):
        assert await engine.writer.claim(run_id, executor) is not None
        await expire_lease(pool, run_id)
    assert await engine.writer.claim(run_id, "d") is None
    assert (await read_run(pool, run_id)).attempt == 3
    (sweep,) = [job for job in maintenance_jobs(pool, settings) if job.name == "expired_leases"]
    assert await sweep.run() == {"lost": 1, "redispatched": 0}
    run = await read_run(pool, run_id)
    assert (run.status, run.termination_reason, run.error_code) == ("failed", "error", "EXECUTOR_LOST")
    assert (await event_types(pool, run_id))[-1] == "failed"


async def test_hand_backs_do_not_count_against_the_attempt_cap(
    pool: Pool, settings: Settings, engine: Engine
) -> None:
    run_id = await new_run(pool, settings)
    for executor in ("a", "b", "c"):
        assert await engine.writer.claim(run_id, executor) is not None
        await Executor(pool, settings, engine, name=executor).hand_back()
    fourth = await engine.writer.claim(run_id, "d")
    assert fourth is not None
    assert (fourth.attempt, fourth.handed_back) == (4, 3)


async def test_a_stopping_executor_hands_its_runs_back_and_another_resumes_them(
    pool: Pool, settings: Settings, engine: Engine
) -> None:
    run_id, first, slow_engine = await slow_executor_on_a_new_run(pool, settings, scripted_latency_s=0.1)
    await eventually(lambda: turn_rows(pool, run_id), until=lambda rows: len(rows) >= 3, what="three turns")
    await first.close()
    handed = await read_run(pool, run_id)
    assert (handed.status, handed.handed_back) == ("running", 1)
    assert len(await turn_rows(pool, run_id)) >= 3
    second = Executor(pool, settings, engine, name="second")
    await second.handle(await run_request(pool, run_id))  # the request written by the hand-back
    run = await eventually(
        lambda: read_run(pool, run_id), until=lambda r: r.status != "running", what="the end"
    )
    rows = await turn_rows(pool, run_id)
    assert (run.status, run.termination_reason, run.attempt) == ("completed", "persona_goodbye", 2)
    assert [r["turn_number"] for r in rows] == list(range(1, len(rows) + 1))
    persona_lines = [r["text"] for r in rows if r["role"] == "persona" and r["text"]]
    assert persona_lines == [
        f"line {i}" for i in range(12)
    ]  # every line once: nothing lost, nothing repeated
    assert {r["attempt"] for r in rows} == {1, 2}
    await slow_engine.tools.close()


async def test_renewing_leases_drops_a_conversation_another_executor_took_over(
    pool: Pool, settings: Settings
) -> None:
    run_id, executor, slow_engine = await slow_executor_on_a_new_run(pool, settings, scripted_latency_s=0.2)
    assert executor.playing() == {run_id}
    await expire_lease(pool, run_id)
    assert await slow_engine.writer.claim(run_id, "thief") is not None
    await executor.extend_leases()
    await eventually(lambda: asyncio.sleep(0, executor.playing()), until=lambda p: not p, what="dropped")
    run = await read_run(pool, run_id)
    assert (run.claimed_by, run.status) == ("thief", "running")
    await executor.close()
    assert (await read_run(pool, run_id)).handed_back == 0  # it no longer held the run
    await slow_engine.tools.close()


async def test_renewing_leases_pushes_the_expiry_forward(
    pool: Pool, settings: Settings, engine: Engine
) -> None:
    run_id, executor, slow_engine = await slow_executor_on_a_new_run(
        pool, settings, scripted_latency_s=0.5, lease_ttl_s=60
    )
    async with transaction(pool) as conn:
        await conn.execute(
            "UPDATE eval_runs SET lease_expires_at = now() + interval '1 second' WHERE id = $1", run_id
        )
    await executor.extend_leases()
    async with connection(pool) as conn:
        left = await conn.fetchval(
            "SELECT extract(epoch FROM lease_expires_at - now()) FROM eval_runs WHERE id = $1", run_id
        )
    assert left > 50
    await executor.close()
    await slow_engine.tools.close()
