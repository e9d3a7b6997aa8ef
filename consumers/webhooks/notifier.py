"""The notifier role: run (and ops) events → one delivery per subscribed endpoint → signed
webhooks, retried on schedule (DESIGN.md §2, §8).

The Kafka handler only writes delivery rows (one per (endpoint, event): a redelivered event
creates nothing) and wakes the sender; the sender, beside it in the same process, claims due
deliveries from PostgreSQL and sends them. So a slow receiver never holds up the topic, and
retries live in the database: they survive restarts and are shared by every replica. The
events being handled at once (one per partition) are fanned out together: one query finds
every audience, one statement writes every delivery, and each handler returns (and its offset
is committed) only once its deliveries are written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import get_args

from consumers.role import BATCHED_FETCH, BuiltRole, Role, RoleContext
from consumers.webhooks.batching import Batcher
from consumers.webhooks.sender import Sender
from schemas.events import Event, EventType, Topic
from schemas.webhooks import SubscribableEvent
from service.core.clock import Clock
from service.core.ids import new_id
from service.core.logging import get_logger
from service.core.sealing import SecretBox
from service.db import deliveries, webhooks
from service.db.postgres import Pool, connection
from service.runs.views import run_view
from service.webhooks.payloads import event_payload, needs_run

log = get_logger("consumers.webhooks.notifier")

NOTIFIED: frozenset[EventType] = frozenset(EventType(t) for t in get_args(SubscribableEvent))


class Fanout:
    """Turns events into deliveries for their companies' subscribed endpoints."""

    def __init__(self, pool: Pool, clock: Clock, sender: Sender) -> None:
        self._pool = pool
        self._clock = clock
        self._sender = sender
        self.batcher: Batcher[Event, int] = Batcher("webhook_fanout", self._fan_out)

    async def handle(self, event: Event) -> None:
        if event.type in NOTIFIED and await self.batcher.submit(event):
            self._sender.wake()

    async def _fan_out(self, events: Sequence[Event]) -> list[int]:
        """Write the deliveries of a batch of events; how many each event got."""
        asked = [(e.company_id, str(e.type), e.run_id if needs_run(e) else None) for e in events]
        async with connection(self._pool) as conn:
            audiences = await webhooks.audiences(conn, asked)
            new = [
                self._deliveries(event, audience) for event, audience in zip(events, audiences, strict=True)
            ]
            await deliveries.insert_deliveries(conn, [d for group in new for d in group], self._clock.now())
        for event, group in zip(events, new, strict=True):
            if group:
                log.info(
                    "webhook_deliveries_created", event_id=str(event.id), type=event.type, count=len(group)
                )
        return [len(group) for group in new]

    def _deliveries(self, event: Event, audience: webhooks.Audience) -> list[deliveries.NewDelivery]:
        if not audience.endpoint_ids:
            return []
        if needs_run(event) and audience.run is None:
            log.warning("webhook_run_missing", event_id=str(event.id), run_id=str(event.run_id))
            return []
        payload = event_payload(event, None if audience.run is None else run_view(audience.run))
        return [
            deliveries.NewDelivery(
                id=new_id(),
                endpoint_id=endpoint_id,
                company_id=event.company_id,
                event_id=event.id,
                event_type=event.type,
                run_id=event.run_id,
                sequence=event.sequence,
                payload=payload,
            )
            for endpoint_id in audience.endpoint_ids
        ]


def build(context: RoleContext) -> BuiltRole:
    settings = context.settings
    box = SecretBox(settings.require_webhook_keys())
    sender = Sender(context.pool, settings, box, context.clock)
    fanout = Fanout(context.pool, context.clock, sender)

    async def background() -> None:
        stop = asyncio.Event()
        fanning = asyncio.create_task(fanout.batcher.run(stop))
        try:
            await sender.run()
        finally:
            stop.set()
            await fanning

    return BuiltRole(handler=fanout.handle, background=background, stop=sender.stop)


# Deliveries do not depend on the order of events (receivers order by `sequence`), so a partition's
# records are fanned out up to 64 at a time.
ROLE = Role("notifier", (Topic.RUN_EVENTS, Topic.OPS_EVENTS), NOTIFIED, build, chunk=64, fetch=BATCHED_FETCH)
