"""One webhook attempt: the signed POST (Standard Webhooks v1, every valid secret signing), what
the receiver answered, and what that makes of the delivery (delivered, retried on schedule,
exhausted, or failed for good)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from standardwebhooks.webhooks import Webhook

from schemas.webhooks import DeliveryStatus
from service.core.clock import Clock
from service.core.errors import OutboundRefused
from service.core.outbound import check_target, refusal
from service.core.sealing import SecretBox
from service.db import deliveries
from service.domain.webhooks import Outcome, next_attempt, retry_after_s

USER_AGENT = "agent-eval-webhooks/1"
RESPONSE_KEPT = 1024  # bytes of the receiver's answer kept in the attempt log


@dataclass(frozen=True)
class Answer:
    """What the receiver said (or why there was no answer)."""

    status_code: int | None
    error: str | None
    response: str | None
    retry_after: str | None
    elapsed_ms: int


class Poster:
    """Signs and POSTs deliveries through one guarded client session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        box: SecretBox,
        clock: Clock,
        *,
        allow_private: bool,
        max_bytes: int,
    ) -> None:
        self._session = session
        self._box = box
        self._clock = clock
        self._allow_private = allow_private
        self._max_bytes = max_bytes
        self._secrets: dict[str, str] = {}  # sealed -> opened, once per process

    def _open(self, sealed: str) -> str:
        secret = self._secrets.get(sealed)
        if secret is None:
            secret = self._secrets[sealed] = self._box.open(sealed)
        return secret

    def signature(self, claimed: deliveries.Claimed, message_id: str, at: datetime) -> str:
        """`v1,<sig>` with the current secret, and with the previous one during its grace period."""
        secrets = [self._open(claimed.secret_sealed)]
        previous, until = claimed.previous_secret_sealed, claimed.previous_secret_expires_at
        if previous is not None and until is not None and at < until:
            secrets.append(self._open(previous))
        body = claimed.delivery.payload
        return " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)

    async def post(self, claimed: deliveries.Claimed) -> Answer:
        delivery = claimed.delivery
        at = self._clock.now()
        message_id = str(delivery.event_id)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": self.signature(claimed, message_id, at),
        }
        started = self._clock.monotonic()
        try:
            check_target(claimed.url, allow_private=self._allow_private)
            async with self._session.post(
                claimed.url, data=delivery.payload.encode(), headers=headers, allow_redirects=False
            ) as response:
                raw = await response.content.read(self._max_bytes)
                text = storable(raw[:RESPONSE_KEPT].decode("utf-8", "replace")) or None
                error = status_error(response.status, response.headers.get("Location"))
                return Answer(
                    response.status, error, text, response.headers.get("Retry-After"), self._ms(started)
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = refusal(exc) or f"{type(exc).__name__}: {exc}".rstrip(": ")
            return Answer(None, storable(reason), None, None, self._ms(started))
        except OutboundRefused as exc:  # refused before connecting
            return Answer(None, str(exc), None, None, self._ms(started))

    def _ms(self, started: float) -> int:
        return max(0, int((self._clock.monotonic() - started) * 1000))


def storable(text: str) -> str:
    """Text PostgreSQL can store: a receiver's NUL characters become U+FFFD."""
    return text.replace("\x00", "\ufffd")


def status_error(status: int, location: str | None) -> str | None:
    """The attempt's error for an HTTP status (None for a 2xx)."""
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return storable(f"HTTP {status}: redirect to {location or 'nowhere'} not followed")
    return f"HTTP {status}"


def attempt_of(
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
        jitter = random.random()  # noqa: S311 — spreading retries, not security
        retry = next_attempt(delivery.attempts_in_schedule + 1, now, jitter=jitter, retry_after=wait)
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
