"""The webhook sender against real PostgreSQL and real receivers: the retry schedule (run in
seconds on a manual clock) and what each answer means (2xx, 3xx, 410, 429/503 with Retry-After,
timeouts, answers PostgreSQL cannot store as sent)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from email.utils import format_datetime

import pytest

from service.core.settings import Settings
from service.db.postgres import Pool
from tests.support.api import Client, Tenant
from tests.support.clock import ManualClock
from tests.support.deliveries import (
    HOUR,
    SCHEDULE_S,
    Stepper,
    attempted,
    disabled_events,
    fetched,
    gaps_s,
    health,
    queue,
    read,
    registered,
    running_sender,
    settled,
    within_jitter,
)
from tests.support.receiver import Answer, Receiver, running_receiver

# Delays before attempts 2..8 (DESIGN.md §8), each with ±10 % jitter.


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


async def test_a_receiver_that_does_not_answer_in_time_is_a_failure(
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    clock: ManualClock,
) -> None:
    settings = hook_settings.model_copy(update={"webhook_timeout_s": 0.3})
    receiver.script(Answer(delay_s=2.0))
    endpoint = await registered(client, tenant, receiver)
    (delivery,) = await queue(pool, endpoint["id"], tenant.company_id, clock.now())

    async with running_sender(pool, settings, clock):
        row, (attempt,) = await attempted(pool, delivery, 1)

    assert (row.status, attempt.status_code) == ("pending", None)
    assert "Timeout" in (attempt.error or "")


async def test_an_answer_with_a_nul_byte_is_recorded_without_losing_other_attempts(
    client: Client,
    tenant: Tenant,
    receiver: Receiver,
    hook_settings: Settings,
    pool: Pool,
    clock: ManualClock,
) -> None:
    async with running_receiver() as odd:
        odd.default = Answer(body="ok\x00")  # PostgreSQL text cannot hold U+0000
        odd_endpoint = await registered(client, tenant, odd)
        endpoint = await registered(client, tenant, receiver)
        (strange,) = await queue(pool, odd_endpoint["id"], tenant.company_id, clock.now())
        others = await queue(pool, endpoint["id"], tenant.company_id, clock.now(), count=5)
        async with running_sender(pool, hook_settings, clock):
            finished = [await settled(pool, delivery) for delivery in [*others, strange]]

    assert [(row.status, row.attempt_count) for row, _ in finished] == [("succeeded", 1)] * 6
    (attempt,) = finished[-1][1]
    assert attempt.response is not None
    assert attempt.response.startswith("ok")
    assert "\x00" not in attempt.response
