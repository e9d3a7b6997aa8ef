"""Maintenance jobs against real rows: the stuck-run census and the outbox purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from consumers.maintenance import maintenance_jobs
from schemas.events import EventType, decode_event
from service.core.ids import new_id
from service.core.settings import Settings
from service.db import outbox, publishing, rate_limits
from service.db.postgres import Pool, connection, transaction
from tests.support.factories import make_company, make_finished_run, make_run


def _gauge(reason: str) -> float | None:
    return REGISTRY.get_sample_value("agent_eval_runs_stuck", {"reason": reason})


async def _job(pool: Pool, settings: Settings, name: str) -> object:
    (job,) = [j for j in maintenance_jobs(pool, settings) if j.name == name]
    return await job.run()


async def test_stuck_runs_are_counted_by_reason(pool: Pool, settings: Settings) -> None:
    company = await make_company(pool)
    unclaimed, expired, unfinalised, healthy = [await make_run(pool, company.id) for _ in range(4)]
    await make_run(pool, company.id, released=False)  # held runs are not stuck: nobody should run them yet
    async with connection(pool) as conn:
        await conn.execute(
            "UPDATE eval_runs SET released_at = now() - interval '1 minute' WHERE id = $1", unclaimed.id
        )
        await conn.execute(
            "UPDATE eval_runs SET status = 'running', queue_status = 'claimed', claimed_by = 'x',"
            " attempt = 1, lease_expires_at = now() - interval '1 second' WHERE id = $1",
            expired.id,
        )
        await conn.execute(
            "UPDATE eval_runs SET status = 'completed', termination_reason = 'max_turns',"
            " queue_status = 'claimed', claimed_by = 'x', lease_expires_at = now(),"
            " ended_at = now() - interval '3 minutes' WHERE id = $1",
            unfinalised.id,
        )
    counts = await _job(pool, settings, "runs_stuck")
    assert counts == {"unclaimed": 1, "lease_expired": 1, "unfinalised": 1}
    assert (_gauge("unclaimed"), _gauge("lease_expired"), _gauge("unfinalised")) == (1.0, 1.0, 1.0)
    del healthy


async def test_the_purge_deletes_only_sent_rows_past_retention(pool: Pool, settings: Settings) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    async with transaction(pool) as conn:
        for _ in range(3):
            await outbox.append_event(conn, run.id, EventType.RUN_QUEUED, run.summary())
    async with connection(pool) as conn:
        rows = await publishing.fetch_unsent(conn, 10)
        old, recent, unsent = rows
        await publishing.mark_sent(conn, [old.id, recent.id], [(0, 0), (0, 1)])
        await conn.execute(  # an unpublished row is kept however old it is
            "UPDATE outbox SET created_at = now() - interval '73 hours' WHERE id = ANY($1::bigint[])",
            [old.id, unsent.id],
        )
    assert await _job(pool, settings, "outbox_purge") == 1
    async with connection(pool) as conn:
        left = await conn.fetch("SELECT id FROM outbox ORDER BY id")
    assert [r["id"] for r in left] == [recent.id, unsent.id]


async def test_the_purge_forgets_old_rate_limit_windows_only(pool: Pool, settings: Settings) -> None:
    key_id = new_id()
    now = datetime.now(UTC)
    async with connection(pool) as conn:
        await rate_limits.count_request(conn, key_id, now - timedelta(hours=2))
        await rate_limits.count_request(conn, key_id, now.replace(second=0, microsecond=0))
    assert await _job(pool, settings, "rate_limit_purge") == 1
    async with connection(pool) as conn:
        assert await rate_limits.count_request(conn, key_id, now.replace(second=0, microsecond=0)) == 2


async def test_the_finalisation_sweep_nudges_a_stuck_run_once_per_two_minutes(
    pool: Pool, settings: Settings
) -> None:
    company = await make_company(pool, balance_cents=100)
    stuck = await make_finished_run(pool, company.id, status="failed")
    fresh = await make_finished_run(pool, company.id, status="cancelled")
    async with connection(pool) as conn:
        await conn.execute(
            "UPDATE eval_runs SET ended_at = now() - interval '3 minutes' WHERE id = $1", stuck.id
        )
    assert await _job(pool, settings, "finalisation_sweep") == 1
    async with connection(pool) as conn:
        bodies = await outbox.list_run_event_bodies(conn, stuck.id)
        assert await outbox.list_run_event_bodies(conn, fresh.id) == []
    assert [decode_event(b).type for b in bodies] == ["agent_eval.run.failed"]
    assert await _job(pool, settings, "finalisation_sweep") == 0  # not again within two minutes
    async with connection(pool) as conn:
        await conn.execute(
            "UPDATE eval_runs SET last_swept_at = now() - interval '3 minutes' WHERE id = $1", stuck.id
        )
    assert await _job(pool, settings, "finalisation_sweep") == 1


@pytest.mark.parametrize(
    ("status", "scored", "expected"),
    [
        ("completed", False, "agent_eval.run.completed"),
        ("completed", True, "agent_eval.run.scored"),
        ("cancelled", False, "agent_eval.run.cancelled"),
    ],
)
async def test_the_sweep_re_emits_the_last_stage_event(
    pool: Pool, settings: Settings, status: str, scored: bool, expected: str
) -> None:
    company = await make_company(pool)
    run = await make_finished_run(pool, company.id, status=status)
    async with connection(pool) as conn:
        await conn.execute(
            "UPDATE eval_runs SET ended_at = now() - interval '3 minutes',"
            " scored_at = CASE WHEN $2 THEN now() END WHERE id = $1",
            run.id,
            scored,
        )
    await _job(pool, settings, "finalisation_sweep")
    async with connection(pool) as conn:
        (body,) = await outbox.list_run_event_bodies(conn, run.id)
    assert decode_event(body).type == expected


async def test_the_purge_deletes_finished_webhook_deliveries_past_retention_only(
    pool: Pool, settings: Settings
) -> None:
    company = await make_company(pool)
    endpoint_id, old, recent, pending = new_id(), new_id(), new_id(), new_id()
    async with connection(pool) as conn:
        await conn.execute(
            "INSERT INTO webhook_endpoints (id, company_id, url, secret_sealed)"
            " VALUES ($1, $2, 'https://x', 's')",
            endpoint_id,
            company.id,
        )
        for delivery_id, status, age in (
            (old, "succeeded", 31),
            (recent, "exhausted", 29),
            (pending, "pending", 40),
        ):
            await conn.execute(
                "INSERT INTO webhook_deliveries (id, endpoint_id, company_id, event_id, event_type, payload,"
                " status, updated_at) VALUES ($1, $2, $3, $4, 'agent_eval.run.done', '{}', $5,"
                " now() - make_interval(days => $6))",
                delivery_id,
                endpoint_id,
                company.id,
                new_id(),
                status,
                age,
            )
    assert await _job(pool, settings, "webhook_delivery_purge") == 1
    async with connection(pool) as conn:
        left = {r["id"] for r in await conn.fetch("SELECT id FROM webhook_deliveries")}
    assert left == {recent, pending}
