"""Sending webhooks: claim due deliveries, POST them signed, record each attempt, schedule the next.

At most `webhook_concurrency` attempts are in flight per process and `webhook_endpoint_concurrency`
per endpoint, and a claim only takes what fits, so a slow or dead receiver holds its own slots
and nobody else's. Every attempt is signed afresh (Standard Webhooks v1, with the previous
secret too during a rotation's grace period) over the stored body; `webhook-id` is the event
id on every attempt. Redirects are never followed; the guarded client refuses forbidden
addresses at connect time; a 15 s timeout bounds each attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import aiohttp
from standardwebhooks.webhooks import Webhook

from schemas.events import EndpointDisabled, EventType
from schemas.webhooks import DeliveryStatus
from service.core.clock import Clock
from service.core.errors import DatabaseError, OutboundRefused
from service.core.logging import bound_context, get_logger
from service.core.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_LATENCY
from service.core.outbound import check_target, guarded_session, refusal
from service.core.sealing import SecretBox
from service.core.settings import Settings
from service.db import deliveries, outbox, webhooks
from service.db.postgres import Connection, Pool, connection, transaction
from service.domain.webhooks import (
    PING_EVENT_TYPE,
    Outcome,
    next_attempt,
    outcome_of,
    retry_after_s,
    should_disable,
)

log = get_logger("consumers.webhooks.sender")
USER_AGENT = "agent-eval-webhooks/1"
RESPONSE_KEPT = 1024  # bytes of the receiver's answer kept in the attempt log
ERROR_BACKOFF_S = 1.0


@dataclass(frozen=True)
class Answer:
    """What the receiver said (or why there was no answer)."""

    status_code: int | None
    error: str | None
    response: str | None
    retry_after: str | None
    elapsed_ms: int


class Sender:
    def __init__(self, pool: Pool, settings: Settings, box: SecretBox, clock: Clock) -> None:
        self._pool = pool
        self._settings = settings
        self._box = box
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: Counter[UUID] = Counter()  # attempts in flight per endpoint id

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
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                claimed = await self._claim()
                for delivery in claimed:
                    self._start(session, delivery)
                await self._pause()
        finally:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await session.close()

    def _free(self) -> int:
        return self._settings.webhook_concurrency - len(self._tasks)

    async def _claim(self) -> list[deliveries.DeliveryRow]:
        per_endpoint = self._settings.webhook_endpoint_concurrency
        room = {endpoint: per_endpoint - n for endpoint, n in self._in_flight.items() if n > 0}
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

    def _start(self, session: aiohttp.ClientSession, delivery: deliveries.DeliveryRow) -> None:
        self._in_flight[delivery.endpoint_id] += 1
        task = asyncio.create_task(self._deliver(session, delivery))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, delivery))

    def _finished(self, task: asyncio.Task[None], delivery: deliveries.DeliveryRow) -> None:
        self._tasks.discard(task)
        self._in_flight[delivery.endpoint_id] -= 1
        if self._in_flight[delivery.endpoint_id] <= 0:
            del self._in_flight[delivery.endpoint_id]
        self._wake.set()  # a slot is free
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook_attempt_crashed", delivery_id=str(delivery.id), error=repr(task.exception()))

    async def _deliver(self, session: aiohttp.ClientSession, delivery: deliveries.DeliveryRow) -> None:
        with bound_context(delivery_id=str(delivery.id), event_id=str(delivery.event_id)):
            async with connection(self._pool) as conn:
                (endpoint,) = await webhooks.list_by_ids(conn, [delivery.endpoint_id])
            if not endpoint.is_enabled and delivery.event_type != PING_EVENT_TYPE:
                async with connection(self._pool) as conn:
                    await deliveries.stop_pending(conn, endpoint.id, "the endpoint is disabled")
                return
            answer = await self._post(session, endpoint, delivery)
            await self._record(endpoint, delivery, answer)

    def _signature(self, endpoint: webhooks.EndpointRow, message_id: str, at: datetime, body: str) -> str:
        secrets = [self._box.open(endpoint.secret_sealed)]
        previous, until = endpoint.previous_secret_sealed, endpoint.previous_secret_expires_at
        if previous is not None and until is not None and at < until:
            secrets.append(self._box.open(previous))
        return " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)

    async def _post(
        self, session: aiohttp.ClientSession, endpoint: webhooks.EndpointRow, delivery: deliveries.DeliveryRow
    ) -> Answer:
        at = self._clock.now()
        message_id = str(delivery.event_id)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": self._signature(endpoint, message_id, at, delivery.payload),
        }
        started = self._clock.monotonic()
        try:
            check_target(endpoint.url, allow_private=self._settings.webhook_allow_private)
            async with session.post(
                endpoint.url, data=delivery.payload.encode(), headers=headers, allow_redirects=False
            ) as response:
                raw = await response.content.read(self._settings.webhook_max_response_bytes)
                text = raw[:RESPONSE_KEPT].decode("utf-8", "replace") or None
                error = _status_error(response.status, response.headers.get("Location"))
                return Answer(
                    response.status, error, text, response.headers.get("Retry-After"), self._ms(started)
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = refusal(exc) or f"{type(exc).__name__}: {exc}".rstrip(": ")
            return Answer(None, reason, None, None, self._ms(started))
        except OutboundRefused as exc:  # refused before connecting
            return Answer(None, str(exc), None, None, self._ms(started))

    def _ms(self, started: float) -> int:
        return max(0, int((self._clock.monotonic() - started) * 1000))

    async def _record(
        self, endpoint: webhooks.EndpointRow, delivery: deliveries.DeliveryRow, answer: Answer
    ) -> None:
        now = self._clock.now()
        outcome = outcome_of(answer.status_code)
        attempt = _attempt(delivery, answer, outcome, now)
        WEBHOOK_ATTEMPTS.labels(outcome.value).inc()
        WEBHOOK_LATENCY.observe(answer.elapsed_ms / 1000)
        async with transaction(self._pool) as conn:
            recorded = await deliveries.record_attempt(conn, delivery.id, attempt)
            if recorded is None or delivery.event_type == PING_EVENT_TYPE:
                pass  # a test send says nothing about the endpoint's health
            elif outcome is Outcome.DELIVERED:
                await webhooks.record_success(conn, endpoint.id)
            elif outcome is Outcome.GONE:
                await self._disable(conn, endpoint, now, "the receiver answered 410 Gone")
            else:
                failing = await webhooks.record_failure(conn, endpoint.id, now)
                limit = timedelta(seconds=self._settings.webhook_disable_after_s)
                if failing is not None and should_disable(failing.failing_since, now, limit):
                    await self._disable(conn, endpoint, now, "every attempt failed for too long")
        log.info(
            "webhook_attempted",
            endpoint_id=str(endpoint.id),
            status_code=answer.status_code,
            outcome=outcome.value,
            delivery_status=attempt.status,
            response_ms=answer.elapsed_ms,
            error=answer.error,
        )

    async def _disable(
        self, conn: Connection, endpoint: webhooks.EndpointRow, now: datetime, reason: str
    ) -> None:
        disabled = await webhooks.disable_endpoint(conn, endpoint.id, now, reason)
        if disabled is None:
            return
        await deliveries.stop_pending(conn, endpoint.id, f"the endpoint was disabled: {reason}")
        data = EndpointDisabled(endpoint_id=endpoint.id, url=endpoint.url, reason=reason, disabled_at=now)
        await outbox.append_entity_event(
            conn, EventType.WEBHOOK_ENDPOINT_DISABLED, endpoint.company_id, endpoint.id, data, now=now
        )
        log.warning("webhook_endpoint_disabled", endpoint_id=str(endpoint.id), reason=reason)


def _status_error(status: int, location: str | None) -> str | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"HTTP {status}: redirect to {location or 'nowhere'} not followed"
    return f"HTTP {status}"


def _attempt(
    delivery: deliveries.DeliveryRow, answer: Answer, outcome: Outcome, now: datetime
) -> deliveries.Attempt:
    """The attempt as logged and what the delivery becomes."""
    status: DeliveryStatus
    due: datetime | None = None
    if outcome is Outcome.DELIVERED:
        status = "succeeded"
    elif outcome is Outcome.GONE:
        status = "failed"
    else:
        wait = retry_after_s(answer.retry_after, now) if outcome is Outcome.THROTTLED else None
        retry = next_attempt(delivery.attempts_in_schedule + 1, now, jitter=random.random(), retry_after=wait)  # noqa: S311 — jitter
        status, due = ("pending", retry.at) if retry.at is not None else ("exhausted", None)
    return deliveries.Attempt(
        attempted_at=now,
        status_code=answer.status_code,
        error=answer.error,
        response_ms=answer.elapsed_ms,
        response=answer.response,
        status=status,
        next_attempt_at=due,
    )
