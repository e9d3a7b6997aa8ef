"""Sending webhooks: claim due deliveries, POST them signed, record each attempt, schedule the next.

At most `webhook_concurrency` attempts are in flight per process and `webhook_endpoint_concurrency`
per endpoint, and a claim only takes what fits, so a slow or dead receiver holds its own slots
and nobody else's. Every attempt is signed afresh over the stored body (`attempts.Poster`);
`webhook-id` is the event id on every attempt. Redirects are never followed; the guarded client
refuses forbidden addresses at connect time; a 15 s timeout bounds each attempt. Attempts are
recorded in batches (`batching.Batcher`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from consumers.webhooks.attempts import Answer, Poster, attempt_of
from consumers.webhooks.batching import Batcher
from schemas.events import EndpointDisabled, EventType
from service.core.clock import Clock
from service.core.errors import DatabaseError
from service.core.logging import bound_context, get_logger
from service.core.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_LATENCY
from service.core.outbound import guarded_session
from service.core.sealing import SecretBox
from service.core.settings import Settings
from service.db import deliveries, outbox, webhooks
from service.db.postgres import Pool, connection, transaction
from service.domain.webhooks import PING_EVENT_TYPE, Outcome, outcome_of, should_disable

log = get_logger("consumers.webhooks.sender")
ERROR_BACKOFF_S = 1.0
PREFETCH = 2  # an endpoint may have this many times its concurrency claimed


class Sender:
    def __init__(self, pool: Pool, settings: Settings, box: SecretBox, clock: Clock) -> None:
        self._pool = pool
        self._settings = settings
        self._box = box
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._claimed: Counter[UUID] = Counter()  # claimed, not yet answered, per endpoint id
        self._gates: dict[UUID, asyncio.Semaphore] = {}  # requests in flight per endpoint
        self._recorder: Batcher[deliveries.AttemptEntry, deliveries.Recorded | None] = Batcher(
            "webhook_attempts", self._write_attempts
        )

    def wake(self) -> None:
        """New deliveries may be due now."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Claim and send until stopped; attempts in flight are finished (at most the timeout)."""
        session = guarded_session(
            allow_private=self._settings.webhook_allow_private,
            timeout_s=self._settings.webhook_timeout_s,
            limit=self._settings.webhook_concurrency,
        )
        poster = Poster(
            session,
            self._box,
            self._clock,
            allow_private=self._settings.webhook_allow_private,
            max_bytes=self._settings.webhook_max_response_bytes,
        )
        recorded = asyncio.Event()
        recording = asyncio.create_task(self._recorder.run(recorded))
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                for one in await self._claim():
                    self._start(poster, one)
                await self._pause()
        finally:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            recorded.set()
            await recording
            await session.close()

    def _free(self) -> int:
        return self._settings.webhook_concurrency - len(self._tasks)

    async def _claim(self) -> list[deliveries.Claimed]:
        """Due deliveries that fit: an endpoint may have twice its concurrency claimed (half
        waiting their turn), so one claim feeds it for a while instead of one per answer."""
        per_endpoint = PREFETCH * self._settings.webhook_endpoint_concurrency
        room = {endpoint: per_endpoint - n for endpoint, n in self._claimed.items() if n > 0}
        try:
            async with connection(self._pool) as conn:
                return await deliveries.claim_due(
                    conn,
                    self._clock.now(),
                    lease_s=self._settings.webhook_lease_s,
                    limit=self._free(),
                    per_endpoint=per_endpoint,
                    room=room,
                )
        except DatabaseError as exc:
            log.warning("webhook_claim_failed", error=str(exc))
            await self._sleep(ERROR_BACKOFF_S)
            return []

    async def _pause(self) -> None:
        """Until woken (new deliveries, a freed slot, a stop) or the poll interval passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._settings.webhook_poll_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _start(self, poster: Poster, claimed: deliveries.Claimed) -> None:
        endpoint_id = claimed.delivery.endpoint_id
        self._claimed[endpoint_id] += 1
        if endpoint_id not in self._gates:
            self._gates[endpoint_id] = asyncio.Semaphore(self._settings.webhook_endpoint_concurrency)
        task = asyncio.create_task(self._deliver(poster, claimed))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, claimed.delivery))

    def _answered(self, delivery: deliveries.DeliveryRow) -> None:
        """The request is over: the endpoint's slot is free (the delivery's claim still holds it
        until the attempt is recorded, so no one sends it twice meanwhile)."""
        self._claimed[delivery.endpoint_id] -= 1
        if self._claimed[delivery.endpoint_id] <= 0:
            del self._claimed[delivery.endpoint_id]
            del self._gates[delivery.endpoint_id]
        self._wake.set()

    def _finished(self, task: asyncio.Task[None], delivery: deliveries.DeliveryRow) -> None:
        self._tasks.discard(task)
        self._wake.set()  # a slot is free
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook_attempt_crashed", delivery_id=str(delivery.id), error=repr(task.exception()))

    async def _deliver(self, poster: Poster, claimed: deliveries.Claimed) -> None:
        delivery = claimed.delivery
        with bound_context(delivery_id=str(delivery.id), event_id=str(delivery.event_id)):
            is_ping = delivery.event_type == PING_EVENT_TYPE
            try:
                if not claimed.endpoint_enabled and not is_ping:
                    async with connection(self._pool) as conn:
                        await deliveries.stop_pending(conn, delivery.endpoint_id, "the endpoint is disabled")
                    return
                async with self._gates[delivery.endpoint_id]:
                    answer = await poster.post(claimed)
            finally:
                self._answered(delivery)
            await self._record(claimed, answer, counts_for_health=not is_ping)

    async def _write_attempts(
        self, entries: Sequence[deliveries.AttemptEntry]
    ) -> list[deliveries.Recorded | None]:
        async with connection(self._pool) as conn:
            recorded = await deliveries.record_attempts(conn, entries)
        return [recorded.get(entry.delivery_id) for entry in entries]

    async def _record(self, claimed: deliveries.Claimed, answer: Answer, *, counts_for_health: bool) -> None:
        delivery = claimed.delivery
        now = self._clock.now()
        outcome = outcome_of(answer.status_code)
        attempt = attempt_of(delivery, answer, outcome, now)
        WEBHOOK_ATTEMPTS.labels(outcome.value).inc()
        WEBHOOK_LATENCY.observe(answer.elapsed_ms / 1000)
        recorded = await self._recorder.submit(
            deliveries.AttemptEntry(delivery.id, attempt, counts_for_health)
        )
        log.info(
            "webhook_attempted",
            endpoint_id=str(delivery.endpoint_id),
            status_code=answer.status_code,
            outcome=outcome.value,
            delivery_status=attempt.status,
            response_ms=answer.elapsed_ms,
            error=answer.error,
        )
        if recorded is None or not counts_for_health:
            return
        limit = timedelta(seconds=self._settings.webhook_disable_after_s)
        if outcome is Outcome.GONE:
            await self._disable(claimed, now, "the receiver answered 410 Gone")
        elif should_disable(recorded.failing_since, now, limit):
            await self._disable(claimed, now, "every attempt failed for too long")

    async def _disable(self, claimed: deliveries.Claimed, now: datetime, reason: str) -> None:
        """Disable the endpoint, stop its pending deliveries and announce it, in one transaction."""
        endpoint_id = claimed.delivery.endpoint_id
        async with transaction(self._pool) as conn:
            disabled = await webhooks.disable_endpoint(conn, endpoint_id, now, reason)
            if disabled is None:
                return  # disabled already (by the user, or by another notifier)
            await deliveries.stop_pending(conn, endpoint_id, f"the endpoint was disabled: {reason}")
            data = EndpointDisabled(endpoint_id=endpoint_id, url=disabled.url, reason=reason, disabled_at=now)
            await outbox.append_entity_event(
                conn, EventType.WEBHOOK_ENDPOINT_DISABLED, disabled.company_id, endpoint_id, data, now=now
            )
        log.warning("webhook_endpoint_disabled", endpoint_id=str(endpoint_id), reason=reason)
