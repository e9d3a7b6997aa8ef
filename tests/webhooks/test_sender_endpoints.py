"""The webhook sender and endpoints: disabling endpoints that keep failing, isolation of slow
receivers, the connect-time SSRF guard, signatures and rotation, and replicas sharing the work,
against real PostgreSQL and real receivers."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import pytest

from service.core.clock import SYSTEM_CLOCK
from service.core.settings import Settings
from service.db.postgres import Pool
from tests.support.api import Client, Json, Tenant
from tests.support.clock import ManualClock
from tests.support.deliveries import (
    HOUR,
    Stepper,
    attempted,
    disabled_events,
    fetched,
    health,
    point_at,
    queue,
    read,
    registered,
    running_sender,
)
from tests.support.receiver import Answer, Receiver, running_receiver

# Delays before attempts 2..8 (DESIGN.md §8), each with ±10 % jitter.


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
        await stepper.retry([delivery], 5)  # about 2.6 hours

    row, attempts = await read(pool, delivery)  # the sender stopped: what it decided is written
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

    after = await health(pool, endpoint["id"])  # the sender stopped: what it decided is written
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
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    clock: ManualClock,
) -> None:
    endpoint = await registered(client, tenant, receiver)
    start = clock.now()
    rounds = [  # 40 deliveries, 4 falling due at each step of the clock
        await queue(pool, endpoint["id"], tenant.company_id, start + timedelta(minutes=n), count=4)
        for n in range(1, 11)
    ]

    async with (
        running_sender(pool, hook_settings, clock) as one,
        running_sender(pool, hook_settings, clock) as two,
    ):
        for n, due in enumerate(rounds, start=1):
            clock.set(start + timedelta(minutes=n))
            one.wake()  # both replicas claim at once: the race SKIP LOCKED must settle
            two.wake()
            for delivery in due:
                await attempted(pool, delivery, 1)

    queued = [delivery for due in rounds for delivery in due]
    assert Counter(r.webhook_id for r in receiver.received) == {str(q.event_id): 1 for q in queued}
    finished = [(await read(pool, q))[0] for q in queued]
    assert {(row.status, row.attempt_count) for row in finished} == {("succeeded", 1)}
