"""Handling one record: skip types the role does not handle, decode, call the handler with
retries, and dead-letter what cannot be handled. `consumers.runner` decides *when* (partition
order, commits); this module decides *what happens to one record*.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

from pydantic import ValidationError

from consumers.dlq import dead_letter_record
from schemas.events import Event, decode_event
from service.bus.interface import Bus, Message
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.errors import Abandoned, BusError, DatabaseUnavailable
from service.core.logging import bound_context, get_logger
from service.core.metrics import CONSUMED, CONSUMER_HANDLER_SECONDS, DLQ_RECORDS

log = get_logger("consumers.processing")

Handler = Callable[[Event], Awaitable[None]]
Wanted = Callable[[], bool]  # False once the record's partition was revoked
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (DatabaseUnavailable, BusError, TimeoutError)
MAX_BACKOFF_S = 5.0


class ProcessingConfig(Protocol):
    @property
    def group(self) -> str: ...

    @property
    def types(self) -> frozenset[str]: ...

    @property
    def handler_attempts(self) -> int: ...

    @property
    def retry_base_s(self) -> float: ...


class RecordProcessor:
    def __init__(
        self,
        bus: Bus,
        config: ProcessingConfig,
        handler: Handler,
        stopping: asyncio.Event,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._config = config
        self._handler = handler
        self._stopping = stopping

    async def process(self, message: Message, wanted: Wanted) -> bool:
        """Handle one record; False if it was left unhandled (stopping, or partition revoked)."""
        ce_type = message.header("ce_type")
        if ce_type is not None and ce_type.decode("utf-8", "replace") not in self._config.types:
            self._count(message, "skipped")
            return True
        try:
            event = self._decode(message, ce_type)
        except ValueError as exc:
            return await self._dead_letter(message, wanted, "undecodable", str(exc))
        return await self._handle(message, wanted, event)

    @staticmethod
    def _decode(message: Message, ce_type: bytes | None) -> Event:
        if ce_type is None:
            raise ValueError("missing ce_type header: not a CloudEvent")
        try:
            event = decode_event(message.value)
        except ValidationError as exc:
            raise ValueError(
                f"invalid event body: {exc.error_count()} error(s): {exc.errors()[0]['msg']}"
            ) from exc
        if event.type != ce_type.decode():
            raise ValueError(f"ce_type {ce_type.decode()!r} does not match body type {event.type!r}")
        return event

    async def _handle(self, message: Message, wanted: Wanted, event: Event) -> bool:
        run_id = None if event.run_id is None else str(event.run_id)
        with bound_context(run_id=run_id, event_id=str(event.id), event_type=event.type):
            return await self._handle_bound(message, wanted, event)

    async def _handle_bound(self, message: Message, wanted: Wanted, event: Event) -> bool:
        failures = 0
        while wanted() and not self._stopping.is_set():
            started = self._clock.monotonic()
            try:
                await self._handler(event)
            except Abandoned:
                return False
            except TRANSIENT_ERRORS as exc:
                failures += 1
                log.warning(
                    "handler_transient_failure", event_id=str(event.id), error=str(exc), attempt=failures
                )
            except Exception as exc:
                failures += 1
                log.exception("handler_failed", event_id=str(event.id), type=event.type, attempt=failures)
                if failures >= self._config.handler_attempts:
                    detail = f"{type(exc).__name__}: {exc}"
                    return await self._dead_letter(message, wanted, "handler_failed", detail)
            else:
                CONSUMER_HANDLER_SECONDS.labels(self._config.group).observe(self._clock.monotonic() - started)
                self._count(message, "handled")
                return True
            await self._sleep(self._backoff(failures))
        return False

    def _backoff(self, failures: int) -> float:
        delay = min(MAX_BACKOFF_S, self._config.retry_base_s * 2.0 ** (failures - 1))
        return delay * (0.5 + random.random() / 2)  # noqa: S311 — jitter, not security

    async def _dead_letter(self, message: Message, wanted: Wanted, reason: str, detail: str) -> bool:
        """Copy the record to the DLQ (retrying until it is acknowledged), then let it be committed."""
        record = dead_letter_record(message, self._config.group, reason, detail, self._clock.now())
        failures = 0
        while wanted() and not self._stopping.is_set():
            try:
                await self._bus.publish([record])
            except BusError as exc:
                failures += 1
                log.warning("dlq_publish_failed", topic=record.topic, error=str(exc))
                await self._sleep(self._backoff(failures))
                continue
            log.error(
                "record_dead_lettered",
                topic=message.topic,
                offset=message.offset,
                reason=reason,
                error=detail,
            )
            DLQ_RECORDS.labels(message.topic, reason).inc()
            self._count(message, reason)
            return True
        return False

    def _count(self, message: Message, outcome: str) -> None:
        CONSUMED.labels(self._config.group, message.topic, outcome).inc()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
