"""Runs, turns and events through the db layer, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from schemas.api import Turn, TurnRole
from schemas.events import EventType, RunQueued, RunTurnRecorded, decode_event
from service.core.errors import ConstraintViolation, NotFound
from service.core.ids import new_id
from service.db import outbox, publishing, runs, turns
from service.db.postgres import Pool, connection, transaction
from tests.support.factories import make_company, make_run


async def test_insert_and_fetch_a_run(pool: Pool) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id, labels={"ci": "main"})
    assert (run.status, run.queue_status, run.attempt, run.last_event_seq) == ("queued", "pending", 0, 0)
    assert run.released_at is not None
    async with connection(pool) as conn:
        assert await runs.fetch_run(conn, run.id) == run
        assert await runs.get_run(conn, run.id, company.id) == run
        assert (await runs.get_run(conn, run.id)).labels == {"ci": "main"}


async def test_another_companys_run_looks_missing(pool: Pool) -> None:
    owner, stranger = await make_company(pool), await make_company(pool, name="Other")
    run = await make_run(pool, owner.id)
    async with connection(pool) as conn:
        assert await runs.fetch_run(conn, run.id, stranger.id) is None
        with pytest.raises(NotFound):
            await runs.get_run(conn, run.id, stranger.id)
        with pytest.raises(NotFound):
            await runs.get_run(conn, uuid4())


async def test_a_held_run_has_no_release_time(pool: Pool) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id, released=False)
    assert run.released_at is None


async def test_turns_are_listed_in_turn_order(pool: Pool) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    async with transaction(pool) as conn:
        order: list[tuple[int, TurnRole]] = [(2, "agent"), (1, "persona"), (3, "tool_result")]
        for number, role in order:
            await turns.insert_turn(
                conn,
                turns.NewTurn(
                    id=new_id(),
                    run_id=run.id,
                    turn_number=number,
                    role=role,
                    text=f"turn {number}",
                    cost_microcents=1_500_001,
                ),
            )
    async with connection(pool) as conn:
        listed = await turns.list_turns(conn, run.id)
    assert [t.turn_number for t in listed] == [1, 2, 3]
    assert [t.role for t in listed] == ["persona", "agent", "tool_result"]
    assert listed[0].to_api().cost_cents == 2  # 1.500001 cents, shown rounded up


async def test_a_turn_number_is_written_once(pool: Pool) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    new = turns.NewTurn(id=new_id(), run_id=run.id, turn_number=1, role="persona", text="hi")
    async with transaction(pool) as conn:
        await turns.insert_turn(conn, new)
    with pytest.raises(ConstraintViolation) as caught:
        async with transaction(pool) as conn:
            await turns.insert_turn(
                conn, turns.NewTurn(id=new_id(), run_id=run.id, turn_number=1, role="agent")
            )
    assert caught.value.constraint == "eval_run_turns_run_id_turn_number_key"


async def test_append_event_numbers_events_per_run_and_writes_the_body(pool: Pool) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    async with transaction(pool) as conn:
        first = await outbox.append_event(conn, run.id, EventType.RUN_QUEUED, run.summary())
        second = await outbox.append_event(conn, run.id, EventType.RUN_QUEUED, run.summary())
    assert (first.sequence, second.sequence) == (1, 2)
    async with connection(pool) as conn:
        bodies = await outbox.list_run_event_bodies(conn, run.id)
        assert (await runs.get_run(conn, run.id)).last_event_seq == 2
        rows = await publishing.fetch_unsent(conn, 10)
    decoded = [decode_event(body) for body in bodies]
    assert decoded == [first, second]
    assert isinstance(decoded[0], RunQueued)
    assert decoded[0].data.id == run.id
    assert [r.key for r in rows] == [str(run.id)] * 2
    assert {r.topic for r in rows} == {"agent-eval.run-events.v1"}
    assert all(r.traceparent and r.traceparent.startswith("00-") for r in rows)


async def test_turn_events_carry_the_turn(pool: Pool) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    async with transaction(pool) as conn:
        row = await turns.insert_turn(
            conn, turns.NewTurn(id=new_id(), run_id=run.id, turn_number=1, role="persona", text="hello")
        )
        event = await outbox.append_event(conn, run.id, EventType.RUN_TURN, row.to_api())
    assert isinstance(event, RunTurnRecorded)
    assert event.data == Turn.model_validate(row.to_api().model_dump())


async def test_concurrent_appends_number_densely_in_commit_order(pool: Pool) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)

    async def append() -> None:
        async with transaction(pool) as conn:
            await outbox.append_event(conn, run.id, EventType.RUN_STARTED, run.summary())

    await asyncio.gather(*(append() for _ in range(20)))
    async with connection(pool) as conn:
        rows = await publishing.fetch_unsent(conn, 100)
    assert [r.sequence for r in rows] == list(range(1, 21))  # publish (id) order == sequence order


async def test_append_event_for_a_missing_run_is_not_found(pool: Pool) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    with pytest.raises(NotFound):
        async with transaction(pool) as conn:
            await outbox.append_event(conn, uuid4(), EventType.RUN_QUEUED, run.summary())


async def test_run_requests_and_entity_events_have_no_sequence(pool: Pool) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    async with transaction(pool) as conn:
        await outbox.append_run_request(conn, run.id, company.id)
    async with connection(pool) as conn:
        (row,) = await publishing.fetch_unsent(conn, 10)
        assert (await runs.get_run(conn, run.id)).last_event_seq == 0
    assert (row.topic, row.type, row.sequence) == (
        "agent-eval.run-requests.v1",
        "agent_eval.run.requested",
        None,
    )


async def test_published_rows_leave_the_pending_list_and_run_requests_keep_their_position(
    pool: Pool,
) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    async with transaction(pool) as conn:
        await outbox.append_run_request(conn, run.id, company.id)
        await outbox.append_event(conn, run.id, EventType.RUN_QUEUED, run.summary())
    async with connection(pool) as conn:
        request, event = await publishing.fetch_unsent(conn, 10)
        assert await publishing.unsent_stats(conn) == (2, request.created_at)
        await publishing.mark_sent(conn, [request.id, event.id], [(3, 41), (5, 7)])
        assert await publishing.fetch_unsent(conn, 10) == []
        assert (await publishing.unsent_stats(conn))[0] == 0
        positions = await conn.fetch(
            "SELECT type, published_partition, published_offset FROM outbox ORDER BY id"
        )
    assert [tuple(r) for r in positions] == [
        ("agent_eval.run.requested", 3, 41),
        ("agent_eval.run.queued", None, None),  # only run requests need where they went
    ]


async def test_events_and_state_roll_back_together(pool: Pool) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)

    async def write_then_fail() -> None:
        async with transaction(pool) as conn:
            await outbox.append_event(conn, run.id, EventType.RUN_QUEUED, run.summary())
            raise RuntimeError("handler failed after writing")

    with pytest.raises(RuntimeError):
        await write_then_fail()
    async with connection(pool) as conn:
        assert await publishing.fetch_unsent(conn, 10) == []
        assert (await runs.get_run(conn, run.id)).last_event_seq == 0


async def test_non_run_event_types_are_refused_by_append_event(pool: Pool) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    with pytest.raises(ValueError, match="not a run event"):
        async with transaction(pool) as conn:
            await outbox.append_event(conn, run.id, EventType.SUITE_RUN_DONE, run.summary())
