"""Who receives an event (`service.db.webhooks.audiences`), against a real PostgreSQL."""

from __future__ import annotations

from service.core.ids import new_id
from service.db import webhooks
from service.db.postgres import Pool, connection, transaction
from tests.support.factories import make_company, make_run

DONE, QUEUED = "agent_eval.run.done", "agent_eval.run.queued"


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
    async with connection(pool) as conn:
        done, queued, unheard = await webhooks.audiences(conn, asked)
    assert done.endpoint_ids == [endpoint.id]
    assert done.run is not None
    assert (done.run.id, done.run.config) == (run.id, run.config)
    assert (queued.endpoint_ids, queued.run) == ([], None)  # subscribed to run.done only
    assert (unheard.endpoint_ids, unheard.run) == ([], None)  # no endpoint at all
