"""Who receives an event (`service.db.webhooks.audiences`), against a real PostgreSQL."""

from __future__ import annotations

from service.core.ids import new_id
from service.db import webhooks
from service.db.postgres import Pool, transaction
from tests.support.factories import make_company, make_run

DONE, QUEUED = "agent_eval.run.done", "agent_eval.run.queued"
_RUNS_READ = """
SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables
WHERE relid = 'eval_runs'::regclass
"""


async def test_the_run_is_read_only_for_events_an_endpoint_subscribes_to(pool: Pool) -> None:
    subscriber, quiet = await make_company(pool), await make_company(pool, name="Quiet")
    run, other = await make_run(pool, subscriber.id), await make_run(pool, quiet.id)
    endpoint = webhooks.NewEndpoint(
        id=new_id(),
        company_id=subscriber.id,
        url="https://hooks.example.com/in",
        description=None,
        event_types=[DONE],
        secret_sealed="sealed",
        is_enabled=True,
    )
    async with transaction(pool) as conn:
        await webhooks.insert_endpoint(conn, endpoint)
    asked = [(subscriber.id, DONE, run.id), (subscriber.id, QUEUED, run.id), (quiet.id, DONE, other.id)]
    async with transaction(pool) as conn:  # the counts are the backend's not yet reported: take a difference
        before = await conn.fetchval(_RUNS_READ)
        done, queued, unheard = await webhooks.audiences(conn, asked)
        read = await conn.fetchval(_RUNS_READ) - before
    assert read == 1  # the subscribed event's run; it used to read all three and drop two
    assert done.endpoint_ids == [endpoint.id]
    assert done.run is not None
    assert (done.run.id, done.run.config) == (run.id, run.config)
    assert (queued.endpoint_ids, queued.run) == ([], None)  # subscribed to run.done only
    assert (unheard.endpoint_ids, unheard.run) == ([], None)  # no endpoint at all
