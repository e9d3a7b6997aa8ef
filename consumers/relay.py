"""The outbox relay: publishes outbox rows to the bus in id order, one active relay at a time.

Each relay process opens one dedicated connection and polls `pg_try_advisory_lock` on it. The
holder is the active relay: on that same connection it selects unsent rows, publishes them,
waits for the acknowledgements and marks them sent. If the process dies its connection closes,
the server frees the lock, and a standby takes over within `relay_lock_poll_s`. A relay that dies
between publish and mark leaves rows unmarked; the next relay publishes them again
(at-least-once: consumers are idempotent). While active, the relay also runs the maintenance
scheduler, so maintenance too has exactly one runner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC

from cloudevents.core.bindings.kafka import to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from schemas.events import EVENT_SOURCE
from service.bus.interface import Bus, OutgoingRecord
from service.bus.topics import topic_name
from service.core.clock import SYSTEM_CLOCK
from service.core.errors import BusError, DatabaseError
from service.core.logging import get_logger
from service.core.metrics import OUTBOX_OLDEST_UNSENT_AGE, OUTBOX_UNSENT, RELAY_ACTIVE, RELAY_PUBLISHED
from service.core.settings import Settings
from service.db import locks, outbox, publishing
from service.db.postgres import Connection, close_quietly, connect, listen, translated
from service.runtime.health import Heartbeat

log = get_logger("consumers.relay")
_JSON = JSONFormat()

# Empty busy polls before the relay sleeps: long enough that a steady trickle of events keeps it
# polling (no NOTIFY), short enough that an idle relay stops polling within half a second.
POLLS_BEFORE_SLEEP = 25
MaintenanceFactory = Callable[[asyncio.Event], Coroutine[object, object, None]]


def outbox_record(row: publishing.OutboxRow, prefix: str) -> OutgoingRecord:
    """The Kafka record for an outbox row: CloudEvents 1.0 binary mode, keyed by run/entity id."""
    attributes: dict[str, object] = {
        "id": str(row.event_id),
        "source": EVENT_SOURCE,
        "type": row.type,
        "specversion": "1.0",
        "time": row.created_at.astimezone(UTC),
        "subject": row.key,
        "datacontenttype": "application/json",
        "partitionkey": row.key,
    }
    if row.sequence is not None:
        attributes["sequence"] = str(row.sequence)
    if row.traceparent:
        attributes["traceparent"] = row.traceparent
    message = to_binary(CloudEvent(attributes=attributes, data=row.payload.encode()), _JSON)
    headers = list(message.headers.items())
    if row.traceparent:
        headers.append(("traceparent", row.traceparent.encode()))  # the W3C header tracing tools read
    return OutgoingRecord(topic_name(prefix, row.topic), row.key.encode(), message.value, tuple(headers))


class Relay:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        *,
        heartbeat: Heartbeat | None = None,
        maintenance: MaintenanceFactory | None = None,
        name: str = "relay",
    ) -> None:
        self._settings = settings
        self._dsn = settings.require_database_url()
        self._bus = bus
        self._heartbeat = heartbeat or Heartbeat()
        self._maintenance = maintenance
        self._name = name
        self.active = asyncio.Event()  # set while this relay holds the lock (tests watch it)

    async def run(self, stop: asyncio.Event) -> None:
        """Contend for the lock, relay while holding it, reconnect after failures, until `stop`."""
        while not stop.is_set():
            try:
                # Not durable: a crash may forget that rows were published, and they are then
                # published again (at least once); a flush per batch would slow every hop.
                conn = await connect(self._dsn, application_name=f"agent-eval-{self._name}", durable=False)
            except DatabaseError as exc:
                log.warning("relay_connect_failed", error=str(exc))
                await _wait(stop, self._settings.relay_lock_poll_s)
                continue
            try:
                async with translated():  # the lock and the outbox run on this connection
                    await self._contend(conn, stop)
            except (DatabaseError, BusError) as exc:
                log.warning("relay_interrupted", error=str(exc))
                await _wait(stop, self._settings.relay_lock_poll_s)
            finally:
                self._set_inactive()
                await close_quietly(conn)

    async def _contend(self, conn: Connection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._heartbeat.beat()
            if await locks.try_advisory_lock(conn, locks.RELAY_LOCK_KEY):
                await self._lead(conn, stop)
                return
            await _wait(stop, self._settings.relay_lock_poll_s)

    async def _lead(self, conn: Connection, stop: asyncio.Event) -> None:
        log.info("relay_active", relay=self._name)
        self.active.set()
        RELAY_ACTIVE.set(1)
        maintenance_stop = asyncio.Event()
        maintenance = (
            asyncio.create_task(self._maintenance(maintenance_stop), name="maintenance")
            if self._maintenance is not None
            else None
        )
        try:
            await self._publish_loop(conn, stop)
        finally:
            maintenance_stop.set()
            if maintenance is not None:
                await asyncio.gather(maintenance, return_exceptions=True)

    async def _publish_loop(self, conn: Connection, stop: asyncio.Event) -> None:
        wake = asyncio.Event()

        def on_notify(*_: object) -> None:
            wake.set()

        await listen(conn, outbox.NOTIFY_CHANNEL, on_notify)
        batch_size, busy_poll_s = self._settings.relay_batch_size, self._settings.relay_busy_poll_s
        sleep = Drowsiness(busy_poll_s * POLLS_BEFORE_SLEEP)
        await publishing.set_relay_sleeping(conn, True)  # a relay before it may have died awake
        while not stop.is_set():
            self._heartbeat.beat()
            wake.clear()
            published = await self.publish_batch(conn, batch_size)
            change = sleep.after_poll(published > 0, SYSTEM_CLOCK.monotonic())
            if change is not None:
                await publishing.set_relay_sleeping(conn, change)
            if published == batch_size:
                continue
            if published or not sleep.sleeping or change:  # asleep only now: one more poll first
                await _wait(stop, busy_poll_s)
                continue
            await self._record_backlog(conn)
            await _wait_any(stop, wake, self._settings.relay_idle_poll_s)

    async def publish_batch(self, conn: Connection, limit: int) -> int:
        """Publish up to `limit` unsent rows and mark them sent; returns how many."""
        rows = await publishing.fetch_unsent(conn, limit)
        if not rows:
            return 0
        prefix = self._settings.topic_prefix
        published = await self._bus.publish([outbox_record(row, prefix) for row in rows])
        positions = [(p.partition, p.offset) for p in published]  # maintenance reads them (re-dispatch)
        await publishing.mark_sent(conn, [row.id for row in rows], positions)
        for row in rows:
            RELAY_PUBLISHED.labels(row.topic).inc()
        return len(rows)

    async def _record_backlog(self, conn: Connection) -> None:
        count, oldest = await publishing.unsent_stats(conn)
        OUTBOX_UNSENT.set(count)
        age = 0.0 if oldest is None else (SYSTEM_CLOCK.now() - oldest).total_seconds()
        OUTBOX_OLDEST_UNSENT_AGE.set(max(0.0, age))

    def _set_inactive(self) -> None:
        if self.active.is_set():
            log.info("relay_inactive", relay=self._name)
        self.active.clear()
        RELAY_ACTIVE.set(0)

    @property
    def heartbeat(self) -> Heartbeat:
        return self._heartbeat


@dataclass
class Drowsiness:
    """Whether the relay sleeps (waits to be woken) or polls: it wakes when a poll finds rows,
    and falls asleep after `after_s` seconds of polls that found none. Writers notify only a
    sleeping relay (migration 0021), so a busy one costs them no NOTIFY."""

    after_s: float
    sleeping: bool = True
    last_found: float = 0.0

    def after_poll(self, found: bool, now: float) -> bool | None:
        """The new state to announce after a poll, or None when it did not change."""
        if found:
            self.last_found = now
        if self.sleeping and found:
            self.sleeping = False
            return False
        if not self.sleeping and now - self.last_found >= self.after_s:
            self.sleeping = True
            return True
        return None


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiters:
            task.cancel()
