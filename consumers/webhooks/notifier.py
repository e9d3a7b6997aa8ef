"""The notifier role: run (and ops) events → one delivery per subscribed endpoint → signed
webhooks, retried on schedule (DESIGN.md §2, §8).

The Kafka handler only writes delivery rows (one per (endpoint, event): a redelivered event
creates nothing) and wakes the sender; the sender, beside it in the same process, claims due
deliveries from PostgreSQL and sends them. So a slow receiver never holds up the topic, and
retries live in the database: they survive restarts and are shared by every replica.
"""

from __future__ import annotations

from typing import get_args
from uuid import UUID

from consumers.role import BuiltRole, Role, RoleContext
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
    """Turns an event into deliveries for the company's subscribed endpoints."""

    def __init__(self, pool: Pool, clock: Clock, on_created: Sender) -> None:
        self._pool = pool
        self._clock = clock
        self._sender = on_created

    async def handle(self, event: Event) -> None:
        if event.type not in NOTIFIED:
            return
        created = await self.fan_out(event)
        if created:
            self._sender.wake()

    async def fan_out(self, event: Event) -> list[UUID]:
        async with connection(self._pool) as conn:
            run_id = event.run_id if needs_run(event) else None
            endpoint_ids, run = await webhooks.subscribers_and_run(conn, event.company_id, event.type, run_id)
            if not endpoint_ids:
                return []
            if run_id is not None and run is None:
                log.warning("webhook_run_missing", event_id=str(event.id), run_id=str(event.run_id))
                return []
            payload = event_payload(event, None if run is None else run_view(run))
            new = [
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
                for endpoint_id in endpoint_ids
            ]
            created = await deliveries.insert_deliveries(conn, new, self._clock.now())
        if created:
            log.info(
                "webhook_deliveries_created", event_id=str(event.id), type=event.type, count=len(created)
            )
        return created


def build(context: RoleContext) -> BuiltRole:
    settings = context.settings
    box = SecretBox(settings.require_webhook_keys())
    sender = Sender(context.pool, settings, box, context.clock)
    fanout = Fanout(context.pool, context.clock, sender)
    return BuiltRole(handler=fanout.handle, background=sender.run, stop=sender.stop)


ROLE = Role("notifier", (Topic.RUN_EVENTS, Topic.OPS_EVENTS), NOTIFIED, build)
