"""A run's own ending is never a lost lease (DESIGN.md §3 Claim and lease), against real
PostgreSQL: the lease keeper renewing while the conversation ends — after the end committed, or
waiting on the ending's row lock — and an end whose commit the executor never saw report
nothing; a run another executor took is reported lost once, and its conversation stops there."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest

from consumers.executor import endings, persistence
from consumers.executor.conversation import Engine
from consumers.executor.worker import Executor
from service.core.errors import DatabaseUnavailable
from service.core.logging import bound_context
from service.core.settings import Settings
from service.db import claims, dispatch, results
from service.db.claims import Lease, Tenure
from service.db.postgres import Connection, Pool, connection, transaction
from service.domain.lifecycle import Ending
from service.runs.endings import fill_slots
from tests.support.executor_runs import lock_waiters, make_engine, new_run, played_to_the_end, run_request
from tests.support.logs import captured_logs
from tests.support.scenarios import event_types, read_run, scripted_persona, turn_rows
from tests.support.waiting import eventually

SHORT_TALK = scripted_persona(["hello", "bye"])


async def claimed(pool: Pool, settings: Settings, executor: str = "first") -> Lease:
    run_id = await new_run(pool, settings)
    async with connection(pool) as conn:
        run = await claims.claim_run(conn, run_id, executor, 60, 3)
    assert run is not None
    return Lease(run_id, executor, run.attempt)


async def lease_left_s(pool: Pool, run_id: UUID) -> float:
    async with connection(pool) as conn:
        left: float = await conn.fetchval(
            "SELECT extract(epoch FROM lease_expires_at - now()) FROM eval_runs WHERE id = $1", run_id
        )
    return left


async def test_renewal_tells_held_ended_and_taken_leases_apart(pool: Pool, settings: Settings) -> None:
    held, ended, taken, swept = [await claimed(pool, settings) for _ in range(4)]
    async with transaction(pool) as conn:
        assert await claims.finish_run(conn, ended, Ending("max_turns"), 10) is not None
        await conn.execute(
            "UPDATE eval_runs SET lease_expires_at = now() - interval '1 second' WHERE id = ANY($1::uuid[])",
            [taken.run_id, swept.run_id],
        )
        assert await claims.claim_run(conn, taken.run_id, "second", 60, 3) is not None
        assert await dispatch.end_lost_run(conn, swept.run_id, "executor lost") is not None
    ended_left_s = await lease_left_s(pool, ended.run_id)
    async with transaction(pool) as conn:
        tenures = await claims.extend_leases(conn, "first", [held, ended, taken, swept], 600)
    assert tenures == {
        held.run_id: Tenure.HELD,
        ended.run_id: Tenure.ENDED,  # ended by its holder: not lost
        taken.run_id: Tenure.LOST,  # another executor re-claimed it
        swept.run_id: Tenure.LOST,  # failed EXECUTOR_LOST by the sweep, under the same attempt
    }
    assert await lease_left_s(pool, held.run_id) > 500
    assert await lease_left_s(pool, ended.run_id) <= ended_left_s  # only running runs are renewed
    async with connection(pool) as conn:
        assert [await claims.check_lease(conn, lease) for lease in (held, ended, taken, swept)] == [
            Tenure.HELD,
            Tenure.ENDED,
            Tenure.LOST,
            Tenure.LOST,
        ]


async def test_renewing_between_the_end_commit_and_the_conversation_leaving_reports_nothing(
    pool: Pool, settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = Executor(pool, settings, engine, name="first")
    run_id = await new_run(pool, settings, persona=SHORT_TALK)
    playing_at_renewal: list[frozenset[UUID]] = []

    async def renew_then_fill(*args: Any, **kwargs: Any) -> list[UUID]:
        playing_at_renewal.append(executor.playing())  # the end committed; the task still plays
        await executor.extend_leases()
        return await fill_slots(*args, **kwargs)

    monkeypatch.setattr(persistence, "fill_slots", renew_then_fill)
    with captured_logs() as logs:
        await played_to_the_end(executor, pool, run_id)
    assert playing_at_renewal == [frozenset({run_id})]
    assert logs.named("lease_lost") == []
    # logged after the renewal: the conversation was not cancelled by it
    assert [line["run_id"] for line in logs.named("run_ended")] == [str(run_id)]
    assert (await read_run(pool, run_id)).status == "completed"


async def test_renewing_while_waiting_on_the_ending_statement_reports_nothing(
    pool: Pool, settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = Executor(pool, settings, engine, name="first")
    run_id = await new_run(pool, settings, persona=SHORT_TALK)
    renewals: list[asyncio.Task[None]] = []
    settle_runs = results.settle_runs  # the run needs no judge: its end settles it

    async def finish_then_renew(conn: Connection, *args: Any, **kwargs: Any) -> Any:
        ended = await settle_runs(conn, *args, **kwargs)
        # The renewal starts before the end commits and waits on the run's row lock, so the row
        # it reads when the lock is granted is no longer the one its statement started with.
        renewals.append(asyncio.create_task(executor.extend_leases()))
        await eventually(lambda: lock_waiters(pool), what="the renewal waiting on the run's row lock")
        return ended

    monkeypatch.setattr(results, "settle_runs", finish_then_renew)
    with captured_logs() as logs:
        await played_to_the_end(executor, pool, run_id)
        await asyncio.gather(*renewals)
    assert len(renewals) == 1
    assert logs.named("lease_lost") == []
    assert [line["run_id"] for line in logs.named("run_ended")] == [str(run_id)]
    assert (await read_run(pool, run_id)).status == "completed"


async def test_an_end_whose_commit_was_not_acknowledged_is_not_reported_lost(
    pool: Pool, settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = Executor(pool, settings, engine, name="first")
    run_id = await new_run(pool, settings, persona=SHORT_TALK)
    unacknowledged: list[UUID] = []

    @contextlib.asynccontextmanager
    async def commit_then_lose_the_connection(pool: Pool) -> AsyncIterator[Connection]:
        async with transaction(pool) as conn:
            yield conn
        if not unacknowledged:  # the ending's transaction: committed, but the executor never hears so
            unacknowledged.append(run_id)
            raise DatabaseUnavailable("connection lost after COMMIT")

    monkeypatch.setattr(endings, "transaction", commit_then_lose_the_connection)
    with captured_logs() as logs:
        await played_to_the_end(executor, pool, run_id)
    assert unacknowledged == [run_id]
    assert logs.named("lease_lost") == []
    assert [line["run_id"] for line in logs.named("run_already_ended")] == [str(run_id)]
    assert (await read_run(pool, run_id)).status == "completed"
    assert (await event_types(pool, run_id)).count("completed") == 1


async def test_a_failure_to_hand_the_slot_on_does_not_replay_the_ended_run(
    pool: Pool, settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = Executor(pool, settings, engine, name="first")
    run_id = await new_run(pool, settings, persona=SHORT_TALK)

    async def unreachable(*args: Any, **kwargs: Any) -> list[UUID]:
        raise DatabaseUnavailable("the pool is exhausted")

    monkeypatch.setattr(persistence, "fill_slots", unreachable)
    with captured_logs() as logs:
        await played_to_the_end(executor, pool, run_id)
    assert logs.named("lease_lost") == []
    assert logs.named("conversation_interrupted") == []  # the ended run is not played again
    assert [line["run_id"] for line in logs.named("run_ended")] == [str(run_id)]
    company_id = (await read_run(pool, run_id)).company_id
    assert [line["company_id"] for line in logs.named("slot_release_deferred")] == [str(company_id)]


async def test_a_run_another_executor_took_is_reported_lost_once_and_its_conversation_stops(
    pool: Pool, settings: Settings
) -> None:
    # Every model call takes 2 s and the keeper renews every 0.2 s: the keeper finds the loss
    # while the conversation waits on its model, long before its next write would.
    slow = settings.model_copy(update={"scripted_latency_s": 2.0, "lease_ttl_s": 0.6})
    engine = make_engine(slow, pool)
    executor = Executor(pool, slow, engine, name="first")
    kept, taken = await new_run(pool, settings), await new_run(pool, settings)
    requests = {run_id: await run_request(pool, run_id) for run_id in (kept, taken)}
    with captured_logs() as logs:
        for run_id, request in requests.items():  # each record's context, as the consumer loop binds it
            with bound_context(run_id=str(run_id), event_id=str(request.id), event_type=request.type):
                await executor.handle(request)
        async with transaction(pool) as conn:
            await conn.execute(
                "UPDATE eval_runs SET claimed_by = 'thief', attempt = attempt + 1 WHERE id = $1", taken
            )
        written = await turn_rows(pool, taken)
        await eventually(
            lambda: asyncio.sleep(0, executor.playing()),
            until=lambda playing: playing == {kept},
            timeout_s=1.5,
            what="the keeper dropping the taken run",
        )
        await asyncio.sleep(2.5)  # past the model call it was waiting on: a live conversation would write
        await executor.close()
    await engine.tools.close()
    lost = logs.named("lease_lost")
    assert [(line["run_id"], line["attempt"]) for line in lost] == [(str(taken), 1)]
    assert lost[0].get("event_id") in (None, str(requests[taken].id))  # never the other record's
    assert await turn_rows(pool, taken) == written
    run = await read_run(pool, taken)
    assert (run.claimed_by, run.attempt, run.status) == ("thief", 2, "running")
