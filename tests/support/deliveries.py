"""Driving the webhook sender in tests: queue deliveries straight into PostgreSQL, run a `Sender`
beside the test, read a delivery with its attempts, and step a manual clock from one scheduled
attempt to the next, so a schedule of a day runs in seconds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID

from consumers.webhooks.sender import Sender
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.ids import new_id
from service.core.sealing import SecretBox
from service.core.settings import Settings
from service.db import deliveries, delivery_log
from service.db.postgres import Pool, connection
from service.domain.webhooks import PING_EVENT_TYPE
from tests.support.api import Client, Json, Tenant, created
from tests.support.clock import ManualClock
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

# A real event type: unlike a ping, its outcomes count toward the endpoint's health.
EVENT_TYPE = "agent_eval.run.done"
DISABLED_EVENT_TYPE = "agent_eval.webhook_endpoint.disabled"
WAIT_S = 20.0
Found = tuple[deliveries.DeliveryRow, list[delivery_log.AttemptRow]]


@dataclass(frozen=True)
class Queued:
    """A delivery the test created, and what is needed to read it back."""

    id: UUID
    endpoint_id: UUID
    company_id: UUID
    event_id: UUID
    payload: str


async def queue(
    pool: Pool,
    endpoint_id: str | UUID,
    company_id: str | UUID,
    due_at: datetime,
    *,
    count: int = 1,
    event_type: str = EVENT_TYPE,
) -> list[Queued]:
    """Create `count` deliveries of distinct events for the endpoint, due at `due_at`."""
    new = [
        deliveries.NewDelivery(
            id=new_id(),
            endpoint_id=UUID(str(endpoint_id)),
            company_id=UUID(str(company_id)),
            event_id=new_id(),
            event_type=event_type,
            run_id=None,
            sequence=None,
            payload=json.dumps({"type": event_type, "data": {"n": n}}),
        )
        for n in range(count)
    ]
    async with connection(pool) as conn:
        created = await deliveries.insert_deliveries(conn, new, due_at)
    assert sorted(created) == sorted(d.id for d in new)
    return [Queued(d.id, d.endpoint_id, d.company_id, d.event_id, d.payload) for d in new]


async def read(pool: Pool, queued: Queued) -> Found:
    """The delivery as stored now, with its attempts in order (one snapshot: `get_delivery`
    reads the two in separate statements, and an attempt may be recorded in between)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await delivery_log.get_delivery(conn, queued.company_id, queued.endpoint_id, queued.id)


async def attempted(pool: Pool, queued: Queued, count: int, *, timeout_s: float = WAIT_S) -> Found:
    """The delivery once its `count`-th attempt is recorded."""
    return await eventually(
        lambda: read(pool, queued),
        until=lambda found: len(found[1]) >= count,
        timeout_s=timeout_s,
        what=f"attempt {count} of delivery {queued.id}",
    )


async def settled(pool: Pool, queued: Queued) -> Found:
    """The delivery once it is no longer pending."""
    return await eventually(
        lambda: read(pool, queued),
        until=lambda found: found[0].status != "pending",
        timeout_s=WAIT_S,
        what=f"delivery {queued.id} finished",
    )


@dataclass(frozen=True)
class Health:
    """What the sender keeps of an endpoint's health."""

    is_enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None


async def health(pool: Pool, endpoint_id: str | UUID) -> Health:
    async with connection(pool) as conn:
        row = await conn.fetchrow(
            "SELECT is_enabled, disabled_reason, failing_since FROM webhook_endpoints WHERE id = $1",
            UUID(str(endpoint_id)),
        )
    assert row is not None
    return Health(row["is_enabled"], row["disabled_reason"], row["failing_since"])


async def point_at(pool: Pool, endpoint_id: str | UUID, url: str) -> None:
    """Change an endpoint's URL behind the API's back (as a name that resolves elsewhere later would)."""
    async with connection(pool) as conn:
        await conn.execute("UPDATE webhook_endpoints SET url = $2 WHERE id = $1", UUID(str(endpoint_id)), url)


async def disabled_events(pool: Pool, endpoint_id: str | UUID) -> list[dict[str, Any]]:
    """The `webhook_endpoint.disabled` events in the outbox keyed by this endpoint (their bodies)."""
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT payload FROM outbox WHERE type = $1 AND key = $2 ORDER BY id",
            DISABLED_EVENT_TYPE,
            str(endpoint_id),
        )
    return [dict(r["payload"]) for r in rows]


@asynccontextmanager
async def running_sender(
    pool: Pool, settings: Settings, clock: Clock = SYSTEM_CLOCK
) -> AsyncIterator[Sender]:
    """A sender running beside the test; leaving the block stops it and finishes what is in flight."""
    sender = Sender(pool, settings, SecretBox(settings.require_webhook_keys()), clock)
    task = asyncio.create_task(sender.run())
    try:
        yield sender
    finally:
        sender.stop()
        await task


class Stepper:
    """Moves a manual clock to the moments deliveries are due and has the sender attempt them."""

    def __init__(self, pool: Pool, clock: ManualClock, sender: Sender) -> None:
        self.pool = pool
        self.clock = clock
        self.sender = sender

    async def at(self, when: datetime, queued: Sequence[Queued], count: int) -> list[Found]:
        """Set the clock to `when` (and no earlier than each delivery's next attempt), wake the
        sender, and wait for attempt `count` of each."""
        for found in [await read(self.pool, q) for q in queued]:
            row = found[0]
            assert row.status == "pending", row
            assert row.next_attempt_at is not None, row
            when = max(when, row.next_attempt_at)
        self.clock.set(when)
        self.sender.wake()
        return [await attempted(self.pool, q, count) for q in queued]

    async def retry(self, queued: Sequence[Queued], count: int) -> list[Found]:
        """Move the clock to when every one of `queued` is due again; wait for attempt `count`."""
        return await self.at(self.clock.now(), queued, count)

    async def quiet(
        self, endpoint_id: str | UUID, company_id: str | UUID, *, after_s: float = 3 * 86_400
    ) -> Found:
        """Move the clock far past every schedule and prove the sender claimed since: a ping then
        due is attempted. Anything else due by then was claimed no later (oldest first), so once
        the sender is stopped every request it was going to make has arrived."""
        self.clock.advance(after_s)
        (probe,) = await queue(
            self.pool, endpoint_id, company_id, self.clock.now(), event_type=PING_EVENT_TYPE
        )
        self.sender.wake()
        return await attempted(self.pool, probe, 1)


def gaps_s(attempts: Sequence[delivery_log.AttemptRow]) -> list[float]:
    """Seconds between consecutive attempts."""
    times = [a.attempted_at for a in attempts]
    return [(later - earlier) / timedelta(seconds=1) for earlier, later in pairwise(times)]


SCHEDULE_S = (5, 300, 1800, 7200, 18000, 36000, 36000)
HOUR = timedelta(hours=1)


async def registered(client: Client, tenant: Tenant, receiver: Receiver, path: str = "/hooks") -> Json:
    """An endpoint of `tenant` registered over the API, pointing at `receiver`."""
    return await created(client, tenant, "/webhooks", {"url": f"{receiver.url}{path}"})


async def fetched(client: Client, tenant: Tenant, url: str) -> Json:
    """GET `url` as `tenant`, asserting 200."""
    response = await client.get(url, headers=tenant.headers())
    body: Json = await response.json()
    assert response.status == 200, body
    return body


def within_jitter(seconds: float, planned: float) -> bool:
    """True when `seconds` is the planned delay give or take the schedule's 10 % jitter."""
    return planned * 0.9 <= seconds <= planned * 1.1
