"""The webhook sender against real PostgreSQL and real receivers: the retry schedule (run in
seconds on a manual clock), what each answer means (2xx, 3xx, 410, 429/503 with Retry-After),
disabling endpoints that keep failing, isolation of slow receivers, the connect-time SSRF
guard, signatures, and replicas sharing the work."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from email.utils import format_datetime

import pytest

from service.core.clock import SYSTEM_CLOCK
from service.core.settings import Settings
from service.db.postgres import Pool
from tests.support.api import Client, Json, Tenant, created
from tests.support.clock import ManualClock
from tests.support.deliveries import (
    Queued,
    Stepper,
    attempted,
    disabled_events,
    gaps_s,
    health,
    point_at,
    queue,
    read,
    running_sender,
    settled,
)
from tests.support.receiver import Answer, Receiver, running_receiver

# Delays before attempts 2..8 (DESIGN.md §8), each with ±10 % jitter.
SCHEDULE_S = (5, 300, 1800, 7200, 18000, 36000, 36000)
HOUR = timedelta(hours=1)


async def registered(client: Client, tenant: Tenant, receiver: Receiver, path: str = "/hooks") -> Json:
    return await created(client, tenant, "/webhooks", {"url": f"{receiver.url}{path}"})


async def fetched(client: Client, tenant: Tenant, url: str) -> Json:
    response = await client.get(url, headers=tenant.headers())
    body: Json = await response.json()
    assert response.status == 200, body
    return body


def within_jitter(seconds: float, planned: float) -> bool:
    return planned * 0.9 <= seconds <= planned * 1.1


# --- the schedule ------------------------------------------------------------------------------


async def test_a_failing_receiver_gets_eight_attempts_on_the_schedule_then_the_delivery_is_exhausted(
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    clock: ManualClock,
) -> None:
    receiver.default = Answer(status=500)
    endpoint = await registered(client, tenant, receiver)
    (delivery,) = await queue(pool, endpoint["id"], tenant.company_id, clock.now())

    async with running_sender(pool, hook_settings, clock) as sender:
        stepper = Stepper(pool, clock, sender)
        await attempted(pool, delivery, 1)
        for count in range(2, 9):
            await stepper.retry([delivery], count)
        probe, _ = await stepper.quiet(delivery.endpoint_id, delivery.company_id)

    row, attempts = await read(pool, delivery)
    assert (row.status, row.next_attempt_at) == ("exhausted", None)
    assert [a.status_code for a in attempts] == [500] * 8
    gaps = gaps_s(attempts)
    assert all(within_jitter(gap, planned) for gap, planned in zip(gaps, SCHEDULE_S, strict=True)), gaps
    log = await fetched(client, tenant, f"/webhooks/{endpoint['id']}/deliveries/{delivery.id}")
    assert (log["status"], log["attempts"], len(log["attempt_log"])) == ("exhausted", 8, 8)
    sent = [r.webhook_id for r in receiver.received if r.webhook_id != str(probe.event_id)]
    assert sent == [str(delivery.event_id)] * 8


async def test_a_receiver_back_after_three_failures_gets_each_event_once_on_attempt_four(
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    clock: ManualClock,
) -> None:
    receiver.default = Answer(status=500)
    endpoint = await registered(client, tenant, receiver)
    events = await queue(pool, endpoint["id"], tenant.company_id, clock.now(), count=3)

    async with running_sender(pool, hook_settings, clock) as sender:
        stepper = Stepper(pool, clock, sender)
        for delivery in events:
            await attempted(pool, delivery, 1)
        await stepper.retry(events, 2)
        await stepper.retry(events, 3)
        receiver.default = Answer(status=200)
        finished = await stepper.retry(events, 4)
        probe, _ = await stepper.quiet(endpoint["id"], tenant.company_id)

    for row, attempts in finished:
        assert row.status == "succeeded"
        assert [a.status_code for a in attempts] == [500, 500, 500, 200]
    requests = [r for r in receiver.received if r.webhook_id != str(probe.event_id)]
    assert Counter(r.webhook_id for r in requests) == {str(e.event_id): 4 for e in events}
    acknowledged = Counter(r.webhook_id for r in requests if 200 <= r.status < 300)
    assert acknowledged == {str(e.event_id): 1 for e in events}
    assert (await health(pool, endpoint["id"])).failing_since is None


# --- what an answer means ----------------------------------------------------------------------


async def test_410_gone_disables_the_endpoint_stops_its_other_deliveries_and_announces_it(
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    clock: ManualClock,
) -> None:
    receiver.default = Answer(status=410)
    endpoint = await registered(client, tenant, receiver)
    (gone,) = await queue(pool, endpoint["id"], tenant.company_id, clock.now())
    later = await queue(pool, endpoint["id"], tenant.company_id, clock.now() + HOUR, count=2)

    async with running_sender(pool, hook_settings, clock) as sender:
        row, attempts = await settled(pool, gone)
        stopped = [await settled(pool, delivery) for delivery in later]
        probe, _ = await Stepper(pool, clock, sender).quiet(endpoint["id"], tenant.company_id)

    assert row.status == "failed"
    assert [a.status_code for a in attempts] == [410]
    for stopped_row, stopped_attempts in stopped:
        assert (stopped_row.status, stopped_attempts) == ("failed", [])
        assert "disabled" in (stopped_row.last_error or "")
    view = await fetched(client, tenant, f"/webhooks/{endpoint['id']}")
    assert view["enabled"] is False
    assert "410" in view["disabled_reason"]
    (event,) = await disabled_events(pool, endpoint["id"])
    assert (event["company_id"], event["data"]["endpoint_id"]) == (tenant.company_id, endpoint["id"])
    assert "410" in event["data"]["reason"]
    sent = [r.webhook_id for r in receiver.received if r.webhook_id != str(probe.event_id)]
    assert sent == [str(gone.event_id)]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_a_failure_and_is_not_followed(
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    clock: ManualClock,
    status: int,
) -> None:
    async with running_receiver() as elsewhere:
        receiver.script(Answer(status=status, headers={"Location": f"{elsewhere.url}/stolen"}))
        endpoint = await registered(client, tenant, receiver)
        (delivery,) = await queue(pool, endpoint["id"], tenant.company_id, clock.now())
        async with running_sender(pool, hook_settings, clock):
            row, (attempt,) = await attempted(pool, delivery, 1)

    assert elsewhere.received == []
    assert (row.status, attempt.status_code) == ("pending", status)
    assert row.next_attempt_at is not None
    assert within_jitter((row.next_attempt_at - attempt.attempted_at).total_seconds(), SCHEDULE_S[0])
    assert "redirect" in (attempt.error or "")
    assert f"{elsewhere.url}/stolen" in (attempt.error or "")
    assert (await health(pool, endpoint["id"])).failing_since == attempt.attempted_at


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retry_after_when_throttled_pushes_the_next_attempt_past_the_schedule(
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    clock: ManualClock,
    status: int,
    form: str,
) -> None:
    wait = timedelta(seconds=120)
    header = "120" if form == "seconds" else format_datetime(clock.now() + wait, usegmt=True)
    receiver.script(Answer(status=status, headers={"Retry-After": header}))
    endpoint = await registered(client, tenant, receiver)
    (delivery,) = await queue(pool, endpoint["id"], tenant.company_id, clock.now())

    async with running_sender(pool, hook_settings, clock) as sender:
        row, (first,) = await attempted(pool, delivery, 1)
        [(_, attempts)] = await Stepper(pool, clock, sender).retry([delivery], 2)

    assert row.next_attempt_at is not None
    assert row.next_attempt_at - first.attempted_at >= wait
    assert [a.status_code for a in attempts] == [status, 200]
    assert attempts[1].attempted_at - first.attempted_at >= wait


@pytest.mark.parametrize(
    ("status", "header"),
    [(500, "120"), (429, "soon"), (429, "1.5"), (503, "\u00b2")],
    ids=["not-throttled", "words", "fraction", "superscript-digit"],
)
async def test_retry_after_is_ignored_unless_throttled_and_readable(
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    clock: ManualClock,
    status: int,
    header: str,
) -> None:
    receiver.script(Answer(status=status, headers={"Retry-After": header}))
    endpoint = await registered(client, tenant, receiver)
    (delivery,) = await queue(pool, endpoint["id"], tenant.company_id, clock.now())

    async with running_sender(pool, hook_settings, clock):
        row, (attempt,) = await attempted(pool, delivery, 1, timeout_s=10)

    assert (row.status, attempt.status_code) == ("pending", status)
    assert row.next_attempt_at is not None
    assert within_jitter((row.next_attempt_at - attempt.attempted_at).total_seconds(), SCHEDULE_S[0])


# --- endpoint health ---------------------------------------------------------------------------


async def test_an_endpoint_failing_for_longer_than_the_limit_is_disabled_and_announced(
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    clock: ManualClock,
) -> None:
    settings = hook_settings.model_copy(update={"webhook_disable_after_s": 3600.0})
    receiver.default = Answer(status=500)
    endpoint = await registered(client, tenant, receiver)
    (delivery,) = await queue(pool, endpoint["id"], tenant.company_id, clock.now())

    async with running_sender(pool, settings, clock) as sender:
        stepper = Stepper(pool, clock, sender)
        _, (first,) = await attempted(pool, delivery, 1)
        for count in (2, 3, 4):  # about 35 minutes of failures
            await stepper.retry([delivery], count)
        still = await health(pool, endpoint["id"])
        [(row, attempts)] = await stepper.retry([delivery], 5)  # about 2.6 hours

    assert (
        attempts[3].attempted_at - first.attempted_at < HOUR <= attempts[4].attempted_at - first.attempted_at
    )
    assert (still.is_enabled, still.failing_since) == (True, first.attempted_at)
    after = await health(pool, endpoint["id"])
    assert (after.is_enabled, after.failing_since) == (False, first.attempted_at)
    assert "failed" in (after.disabled_reason or "")
    assert row.status == "failed"
    (event,) = await disabled_events(pool, endpoint["id"])
    assert (event["data"]["endpoint_id"], event["data"]["reason"]) == (endpoint["id"], after.disabled_reason)


async def test_a_success_restarts_the_failure_clock(
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    clock: ManualClock,
) -> None:
    settings = hook_settings.model_copy(update={"webhook_disable_after_s": 3600.0})
    receiver.default = Answer(status=500)
    receiver.script(Answer(status=500), Answer(status=200))
    start = clock.now()
    endpoint = await registered(client, tenant, receiver)
    (first,) = await queue(pool, endpoint["id"], tenant.company_id, start)

    async with running_sender(pool, settings, clock) as sender:
        stepper = Stepper(pool, clock, sender)
        await attempted(pool, first, 1)  # fails: the clock starts
        began = await health(pool, endpoint["id"])
        await stepper.at(start + timedelta(minutes=50), [first], 2)  # succeeds: the clock stops
        healed = await health(pool, endpoint["id"])
        (second,) = await queue(pool, endpoint["id"], tenant.company_id, start + timedelta(minutes=55))
        await stepper.at(start + timedelta(minutes=55), [second], 1)  # fails: the clock starts again
        await stepper.at(start + timedelta(minutes=100), [second], 2)  # > 1 h after the first failure
        again = await health(pool, endpoint["id"])
        await stepper.at(start + timedelta(minutes=115), [second], 3)  # 1 h after the second streak began
        after = await health(pool, endpoint["id"])

    assert began.failing_since == start
    assert healed.failing_since is None
    assert (again.is_enabled, again.failing_since) == (True, start + timedelta(minutes=55))
    assert after.is_enabled is False


# --- isolation and the SSRF guard --------------------------------------------------------------


async def test_a_slow_receiver_does_not_delay_another_endpoints_deliveries(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    settings = hook_settings.model_copy(update={"webhook_endpoint_concurrency": 4})
    async with running_receiver() as slow:
        slow.default = Answer(delay_s=2.0)
        slow_endpoint = await registered(client, tenant, slow)
        fast_endpoint = await registered(client, tenant, receiver)
        now = SYSTEM_CLOCK.now()
        await queue(pool, slow_endpoint["id"], tenant.company_id, now, count=30)
        await queue(pool, fast_endpoint["id"], tenant.company_id, now, count=30)

        started = time.monotonic()
        async with running_sender(pool, settings):
            fast = await receiver.wait_for(30)

    fast_done = max(r.at for r in fast)
    assert fast_done - started < 2.0
    assert 1 <= len([r for r in slow.received if r.at <= fast_done]) <= 4


@dataclass
class Listener:
    """A bare TCP port that only counts the connections it gets."""

    port: int = 0
    connections: int = 0


@asynccontextmanager
async def listening() -> AsyncIterator[Listener]:
    listener = Listener()

    async def counted(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener.connections += 1
        writer.close()

    server = await asyncio.start_server(counted, "127.0.0.1", 0)
    listener.port = server.sockets[0].getsockname()[1]
    async with server:
        yield listener


@pytest.mark.parametrize(
    ("host", "refusal"),
    [("localhost", "localhost is not allowed"), ("127.0.0.1", "127.0.0.1 is a loopback address")],
)
async def test_the_sender_refuses_a_private_address_at_connect_time(
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    clock: ManualClock,
    host: str,
    refusal: str,
) -> None:
    guarded = hook_settings.model_copy(update={"webhook_allow_private": False})
    endpoint = await registered(client, tenant, receiver)
    async with listening() as listener:
        await point_at(pool, endpoint["id"], f"https://{host}:{listener.port}/hooks")
        (delivery,) = await queue(pool, endpoint["id"], tenant.company_id, clock.now())
        async with running_sender(pool, guarded, clock):
            row, (attempt,) = await attempted(pool, delivery, 1)

    assert (listener.connections, receiver.received) == (0, [])
    assert (row.status, attempt.status_code) == ("pending", None)
    assert refusal in (attempt.error or "")
    assert "loopback address" in (attempt.error or "")


# --- signatures --------------------------------------------------------------------------------


async def test_every_delivery_is_signed_with_the_event_id_and_the_current_time(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    endpoint = await registered(client, tenant, receiver)
    queued = await queue(pool, endpoint["id"], tenant.company_id, SYSTEM_CLOCK.now(), count=3)
    answer = await client.post(f"/webhooks/{endpoint['id']}/test", headers=tenant.headers())
    assert answer.status == 202
    ping: Json = await answer.json()
    ping_log = await fetched(client, tenant, f"/webhooks/{endpoint['id']}/deliveries/{ping['id']}")
    expected = {str(q.event_id): json.loads(q.payload) for q in queued} | {
        ping["event_id"]: ping_log["payload"]
    }

    async with running_sender(pool, hook_settings):
        requests = await receiver.wait_for(4)
        checked_at = time.time()

    assert sorted(r.webhook_id for r in requests) == sorted(expected)
    for request in requests:
        assert request.verify(endpoint["secret"]) == expected[request.webhook_id]
        assert abs(int(request.headers["webhook-timestamp"]) - checked_at) <= 5
    for q in queued:
        (request,) = [r for r in requests if r.webhook_id == str(q.event_id)]
        assert request.body == q.payload.encode()


async def test_during_a_rotation_both_secrets_sign(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    endpoint = await registered(client, tenant, receiver)
    answer = await client.post(
        f"/webhooks/{endpoint['id']}/rotate-secret", json={"grace_period_s": 3600}, headers=tenant.headers()
    )
    rotated: Json = await answer.json()
    assert answer.status == 200, rotated
    await queue(pool, endpoint["id"], tenant.company_id, SYSTEM_CLOCK.now())

    async with running_sender(pool, hook_settings):
        (request,) = await receiver.wait_for(1)

    assert len(request.headers["webhook-signature"].split()) == 2
    assert request.verify(endpoint["secret"]) == request.verify(rotated["secret"])


# --- replicas ----------------------------------------------------------------------------------


async def test_two_senders_on_one_database_send_each_delivery_exactly_once(
    client: Client, tenant: Tenant, receiver: Receiver, hook_settings: Settings, pool: Pool
) -> None:
    receiver.default = Answer(delay_s=0.05)
    queued: list[Queued] = []
    for n in range(2):
        endpoint = await registered(client, tenant, receiver, f"/hooks/{n}")
        queued += await queue(pool, endpoint["id"], tenant.company_id, SYSTEM_CLOCK.now(), count=20)

    async with running_sender(pool, hook_settings), running_sender(pool, hook_settings):
        finished = [await settled(pool, q) for q in queued]

    assert Counter(r.webhook_id for r in receiver.received) == {str(q.event_id): 1 for q in queued}
    assert {(row.status, row.attempt_count) for row, _ in finished} == {("succeeded", 1)}
