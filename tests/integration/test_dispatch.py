"""Dispatch (DESIGN.md §3): the per-company in-flight cap, releasing the next held run when a slot
frees, and the maintenance sweeps that keep released runs moving (expired leases, stale pending
runs, executors that keep vanishing)."""

from __future__ import annotations

import asyncio
from uuid import UUID

from prometheus_client import REGISTRY

from consumers.maintenance import maintenance_jobs
from consumers.redispatch import ExecutorOffsets, sweep_expired_leases
from service.bus.interface import TopicPartition
from service.bus.memory import InProcessBus
from service.bus.topics import topic_specs
from service.core.settings import Settings
from service.db import dispatch
from service.db.postgres import Pool, connection, transaction
from service.runs.endings import fill_slots
from tests.support.factories import make_company
from tests.support.pipeline import pipeline
from tests.support.scenarios import event_types, finished, make_case, read_run, trigger


async def job(pool: Pool, settings: Settings, name: str) -> object:
    (found,) = [j for j in maintenance_jobs(pool, settings) if j.name == name]
    return await found.run()


async def requests_for(pool: Pool, run_id: UUID) -> int:
    async with connection(pool) as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE run_id = $1 AND type = 'agent_eval.run.requested'", run_id
        )
    return int(count)


async def claim_dead(pool: Pool, run_id: UUID, *, attempt: int = 1, handed_back: int = 0) -> None:
    """Make the run look claimed by an executor that died: its lease is already over."""
    async with transaction(pool) as conn:
        await conn.execute(
            "UPDATE eval_runs SET status = 'running', queue_status = 'claimed', claimed_by = 'dead',"
            " attempt = $2, handed_back = $3, started_at = now(), lease_expires_at = now() - interval '1 s',"
            " dispatched_at = now() - interval '1 minute' WHERE id = $1",
            run_id,
            attempt,
            handed_back,
        )


async def test_runs_past_the_company_cap_are_held_and_released_one_by_one(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    settings = settings.model_copy(update={"max_inflight_runs_per_company": 1})
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(pool, company.id)
    run_ids = [await trigger(pool, settings, company.id, case_id) for _ in range(3)]
    held = [await read_run(pool, run_id) for run_id in run_ids]
    assert [r.released_at is not None for r in held] == [True, False, False]
    assert [await requests_for(pool, run_id) for run_id in run_ids] == [1, 0, 0]
    async with pipeline(settings, pool, bus):
        done = [await finished(pool, run_id) for run_id in run_ids]
    assert all(r.status == "completed" for r in done)
    started = [r.started_at for r in done]
    ended = [r.ended_at for r in done]
    assert started[1] is not None
    assert ended[0] is not None
    assert started[1] >= ended[0]
    assert started[2] is not None
    assert ended[1] is not None
    assert started[2] >= ended[1]


async def test_another_company_is_not_held_by_a_busy_one(pool: Pool, settings: Settings) -> None:
    settings = settings.model_copy(update={"max_inflight_runs_per_company": 1})
    busy, calm = await make_company(pool, balance_cents=100), await make_company(pool, balance_cents=100)
    busy_case, calm_case = await make_case(pool, busy.id), await make_case(pool, calm.id)
    await trigger(pool, settings, busy.id, busy_case)
    second_busy = await trigger(pool, settings, busy.id, busy_case)
    calm_run = await trigger(pool, settings, calm.id, calm_case)
    assert (await read_run(pool, second_busy)).released_at is None
    assert (await read_run(pool, calm_run)).released_at is not None


async def test_the_release_job_frees_held_runs_when_the_cap_allows(pool: Pool, settings: Settings) -> None:
    company = await make_company(pool, balance_cents=100)
    case_id = await make_case(pool, company.id)
    tight = settings.model_copy(update={"max_inflight_runs_per_company": 1})
    runs = [await trigger(pool, tight, company.id, case_id) for _ in range(3)]
    assert await job(pool, tight, "release_held") == 0
    roomy = settings.model_copy(update={"max_inflight_runs_per_company": 2})
    assert await job(pool, roomy, "release_held") == 1
    assert [(await read_run(pool, r)).released_at is not None for r in runs] == [True, True, False]
    assert await requests_for(pool, runs[1]) == 1


async def test_an_expired_lease_is_dispatched_again_once_not_every_sweep(
    pool: Pool, settings: Settings
) -> None:
    company = await make_company(pool, balance_cents=100)
    run_id = await trigger(pool, settings, company.id, await make_case(pool, company.id))
    await claim_dead(pool, run_id)
    assert await job(pool, settings, "expired_leases") == {"lost": 0, "redispatched": 1}
    assert await job(pool, settings, "expired_leases") == {"lost": 0, "redispatched": 0}
    assert await requests_for(pool, run_id) == 2


async def test_an_expired_lease_past_the_attempt_cap_fails_executor_lost_and_frees_its_slot(
    pool: Pool, settings: Settings
) -> None:
    settings = settings.model_copy(update={"max_inflight_runs_per_company": 1})
    company = await make_company(pool, balance_cents=100)
    case_id = await make_case(pool, company.id)
    lost, waiting = (
        await trigger(pool, settings, company.id, case_id),
        await trigger(pool, settings, company.id, case_id),
    )
    await claim_dead(pool, lost, attempt=3)
    assert await job(pool, settings, "expired_leases") == {"lost": 1, "redispatched": 0}
    run = await read_run(pool, lost)
    assert (run.status, run.termination_reason, run.error_code) == ("failed", "error", "EXECUTOR_LOST")
    assert run.error == "no executor finished the run in 3 attempts"
    assert (await event_types(pool, lost))[-1] == "failed"
    assert (await read_run(pool, waiting)).released_at is not None
    assert await requests_for(pool, waiting) == 1


async def test_hand_backs_keep_a_run_under_the_cap_in_the_sweep(pool: Pool, settings: Settings) -> None:
    company = await make_company(pool, balance_cents=100)
    run_id = await trigger(pool, settings, company.id, await make_case(pool, company.id))
    await claim_dead(pool, run_id, attempt=3, handed_back=2)
    assert await job(pool, settings, "expired_leases") == {"lost": 0, "redispatched": 1}


async def test_a_released_run_nobody_claimed_is_dispatched_again(pool: Pool, settings: Settings) -> None:
    company = await make_company(pool, balance_cents=100)
    run_id = await trigger(pool, settings, company.id, await make_case(pool, company.id))
    assert await job(pool, settings, "stale_pending") == 0  # just dispatched
    async with transaction(pool) as conn:
        await conn.execute(
            "UPDATE eval_runs SET dispatched_at = now() - interval '31 seconds' WHERE id = $1", run_id
        )
    assert await job(pool, settings, "stale_pending") == 1
    assert await job(pool, settings, "stale_pending") == 0
    assert await requests_for(pool, run_id) == 2


async def test_a_redispatched_run_is_resumed_by_the_pipeline(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    settings = settings.model_copy(update={"maintenance_interval_s": 0.1})
    company = await make_company(pool, balance_cents=1_000)
    run_id = await trigger(pool, settings, company.id, await make_case(pool, company.id))
    async with transaction(pool) as conn:
        await conn.execute(
            "DELETE FROM outbox WHERE run_id = $1 AND type = 'agent_eval.run.requested'", run_id
        )
    await claim_dead(pool, run_id)
    async with pipeline(settings, pool, bus, maintenance=True):
        run = await finished(pool, run_id)
    assert (run.status, run.attempt) == ("completed", 2)


async def _released_without_a_request(pool: Pool) -> int:
    async with connection(pool) as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM eval_runs r WHERE r.released_at IS NOT NULL AND NOT EXISTS ("
            " SELECT 1 FROM outbox o WHERE o.run_id = r.id AND o.type = 'agent_eval.run.requested')"
        )
    return int(count)


async def test_a_release_interrupted_at_any_point_leaves_no_released_run_without_a_request(
    pool: Pool, settings: Settings
) -> None:
    """The release and its run requests commit together: a task cancelled while releasing (the
    executor's ending, a gateway request) leaves its held runs held or released with requests,
    never released and unheard of until the stale-pending sweep (the 30 s straggler of issue 15)."""
    tight = settings.model_copy(update={"max_inflight_runs_per_company": 1})
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(pool, company.id)
    await trigger(pool, tight, company.id, case_id)  # holds the one slot: later runs wait
    for turns in range(40):  # cancel after 0, 1, 2 … turns of the event loop
        for _ in range(2):
            await trigger(pool, tight, company.id, case_id)
        release = asyncio.create_task(fill_slots(pool, company.id, 10_000, after_end=True))
        for _ in range(turns):
            await asyncio.sleep(0)
        release.cancel()
        await asyncio.gather(release, return_exceptions=True)
        assert await _released_without_a_request(pool) == 0, f"cancelled after {turns} turns"


async def _commit_executors_to(bus: InProcessBus, settings: Settings, offset: int) -> None:
    """The executors' group has read the run-requests partition up to `offset` (next to read)."""
    offsets = ExecutorOffsets.of(bus, settings)
    sub = bus.subscribe(offsets.group, [offsets.topic], on_assigned=_nothing, on_revoked=_nothing)
    await sub.start()
    await sub.commit({TopicPartition(offsets.topic, 0): offset})
    await sub.stop()


async def _nothing(_: frozenset[TopicPartition]) -> None:
    return None


async def _published_at(pool: Pool, run_id: UUID, offset: int) -> None:
    """The run's newest request went out at partition 0, `offset`; the lease expired before it
    was written, and it was written longer than `dispatch_stale_s` ago."""
    async with transaction(pool) as conn:
        await conn.execute(
            "WITH request AS (SELECT max(id) AS id FROM outbox WHERE run_id = $1"
            " AND type = 'agent_eval.run.requested'),"
            " published AS (DELETE FROM outbox_pending WHERE id = (SELECT id FROM request))"
            " UPDATE outbox SET published_partition = 0, published_offset = $2"
            " WHERE id = (SELECT id FROM request)",
            run_id,
            offset,
        )
        await conn.execute(
            "UPDATE eval_runs SET lease_expires_at = now() - interval '2 minutes',"
            " dispatched_at = now() - interval '1 minute' WHERE id = $1",
            run_id,
        )


def _redispatched(reason: str) -> float:
    return REGISTRY.get_sample_value("agent_eval_runs_redispatched_total", {"reason": reason}) or 0.0


async def test_an_expired_lease_is_dispatched_again_only_when_that_request_was_lost(
    pool: Pool, settings: Settings, bus: InProcessBus
) -> None:
    await bus.create_topics(topic_specs(settings.topic_prefix, 1, 1))
    executors = ExecutorOffsets.of(bus, settings)
    company = await make_company(pool, balance_cents=100)
    run_id = await trigger(pool, settings, company.id, await make_case(pool, company.id))
    await claim_dead(pool, run_id)
    before = _redispatched("lease_expired")
    assert await sweep_expired_leases(pool, settings, executors) == {"lost": 0, "redispatched": 1}
    assert _redispatched("lease_expired") == before + 1
    await _published_at(pool, run_id, offset=7)  # and no executor has read that far: it waits
    assert await sweep_expired_leases(pool, settings, executors) == {"lost": 0, "redispatched": 0}
    assert await requests_for(pool, run_id) == 2
    await _published_at(pool, run_id, offset=7)
    await _commit_executors_to(bus, settings, offset=8)  # read, yet nobody took the run: lost
    assert await sweep_expired_leases(pool, settings, executors) == {"lost": 0, "redispatched": 1}
    assert await requests_for(pool, run_id) == 3
    assert _redispatched("lease_expired") == before + 2


async def test_a_release_commits_without_a_flush_wait_and_leaves_the_connection_durable(
    pool: Pool, settings: Settings
) -> None:
    """The release is committed asynchronously (no disk flush inside the company's lock), yet
    the pooled connection that made it still commits durably afterwards."""
    company = await make_company(pool, balance_cents=10_000)
    case_id = await make_case(pool, company.id)
    held_settings = settings.model_copy(update={"max_inflight_runs_per_company": 0})
    run_id = await trigger(pool, held_settings, company.id, case_id)
    async with pool.acquire() as conn:
        session_default = await conn.fetchval("SHOW synchronous_commit")
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = on")  # as on a production server
            assert await dispatch.release_held(conn, company.id, 1) == [run_id]
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        assert await conn.fetchval("SHOW synchronous_commit") == session_default
    assert (await read_run(pool, run_id)).released_at is not None
    assert await requests_for(pool, run_id) == 1
